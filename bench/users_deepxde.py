"""The DeepXDE contender of the users workload: each problem of examples/ written the way
DeepXDE's examples write it, run by DeepXDE's documented recipe at a wall-time budget.

Recipe (DeepXDE's examples, e.g. examples/pinn_forward/Kovasznay_flow.py, Allen_Cahn.py):
second-order PINN residuals with dde.grad.jacobian / dde.grad.hessian; soft conditions
(DirichletBC, IC, PeriodicBC, OperatorBC); dde.data.TimePDE / PDE with num_domain,
num_boundary, num_initial points drawn by DeepXDE (its default "Hammersley" sampler); an FNN with
tanh and "Glorot normal"; DeepXDE's default float32; Adam at lr 1e-3, then L-BFGS (DeepXDE's
defaults: history 100, gtol 1e-8, maxiter 15000, strong Wolfe). The examples run a fixed number
of Adam iterations (15000 - 40000) before L-BFGS; at a wall-time budget, Adam gets the first
half of the budget (ADAM_SHARE) and L-BFGS the rest. L-BFGS runs 20 iterations per DeepXDE step
(LBFGS_options["iter_per_step"], DeepXDE's default 1000) so that the budget and the error
checks can act between steps; torch.optim.LBFGS keeps its history across steps.

Sizes: the example's hidden widths and depth (the flux form's extra outputs aside) and the same
numbers of interior / boundary / initial points.

Runs in the benchmark environment (.venv-bench: torch + deepxde, no fluxkern):
    DDE_BACKEND=pytorch .venv-bench/bin/python bench/users_deepxde.py NAME EVAL.npz OUT.json
        --budget 60 [--interval 1] [--seed 0]
The exact solutions below (exact_*, source terms) are plain torch; tests/test_examples.py checks
them against the examples' own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import users_common as uc

if __name__ == "__main__":  # one thread before torch loads (an import from a test leaves it)
    uc.one_thread()
    os.environ.setdefault("DDE_BACKEND", "pytorch")

import numpy as np  # noqa: E402
import torch  # noqa: E402

PI = math.pi
ADAM_SHARE = 0.5  # the part of the budget run with Adam before L-BFGS


# ---------------------------------------------------------------- exact solutions (plain torch)
def wave_exact(x):
    xs, ts = x[:, 0:1], x[:, 1:2]
    return torch.sin(PI * xs) * torch.cos(2 * PI * ts) + 0.5 * torch.sin(3 * PI * xs) * torch.cos(
        6 * PI * ts
    )


def kg_exact(x):
    xs, ts = x[:, 0:1], x[:, 1:2]
    return xs * torch.cos(5 * PI * ts) + (xs * ts) ** 3


def kg_source(x):
    xs, ts = x[:, 0:1], x[:, 1:2]
    u_tt = -25 * PI**2 * xs * torch.cos(5 * PI * ts) + 6 * xs**3 * ts
    return u_tt - 6 * xs * ts**3 + kg_exact(x) ** 3


KDV_C, KDV_X0 = 2.0, -4.0


def kdv_exact(x, derivative=0):
    a = math.sqrt(KDV_C) / 2
    s = a * (x[:, 0:1] - KDV_C * x[:, 1:2] - KDV_X0)
    sech2 = 1 / torch.cosh(s) ** 2
    return KDV_C / 2 * sech2 if derivative == 0 else -KDV_C * a * sech2 * torch.tanh(s)


def heat_k(x):
    """k and its gradient (k_x, k_y)."""
    sx, sy = torch.sin(4 * PI * x[:, 0:1]), torch.sin(4 * PI * x[:, 1:2])
    cx, cy = torch.cos(4 * PI * x[:, 0:1]), torch.cos(4 * PI * x[:, 1:2])
    return 1 + 0.5 * sx * sy, 2 * PI * cx * sy, 2 * PI * sx * cy


def heat_exact(x):
    s = torch.sin
    xs, ys, ts = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return torch.exp(-ts) * (s(PI * xs) * s(PI * ys) + 0.1 * s(4 * PI * xs) * s(4 * PI * ys))


def heat_source(x):
    """f = u_t - div(k grad u) = u_t - k lap u - k_x u_x - k_y u_y, closed form."""
    s, c = torch.sin, torch.cos
    xs, ys, ts = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    e = torch.exp(-ts)
    u = heat_exact(x)
    lap = e * (-2 * PI**2 * s(PI * xs) * s(PI * ys) - 3.2 * PI**2 * s(4 * PI * xs) * s(4 * PI * ys))
    u_x = e * (PI * c(PI * xs) * s(PI * ys) + 0.4 * PI * c(4 * PI * xs) * s(4 * PI * ys))
    u_y = e * (PI * s(PI * xs) * c(PI * ys) + 0.4 * PI * s(4 * PI * xs) * c(4 * PI * ys))
    k, k_x, k_y = heat_k(x)
    return -u - k * lap - k_x * u_x - k_y * u_y


KOV_RE = 20.0
KOV_L = KOV_RE / 2 - math.sqrt(KOV_RE**2 / 4 + 4 * PI**2)


def kov_exact(x):
    e = torch.exp(KOV_L * x[:, 0:1])
    c, s = torch.cos(2 * PI * x[:, 1:2]), torch.sin(2 * PI * x[:, 1:2])
    return 1 - e * c, KOV_L / (2 * PI) * e * s, 0.5 * (1 - e * e)


TG_NU = 0.1


def tg_exact(x):
    f = torch.exp(-2 * TG_NU * x[:, 2:3])
    xs, ys = x[:, 0:1], x[:, 1:2]
    return -torch.cos(xs) * torch.sin(ys) * f, torch.sin(xs) * torch.cos(ys) * f


def poisson3d_exact(x):
    return torch.sin(PI * x[:, 0:1]) * torch.sin(2 * PI * x[:, 1:2]) * torch.sin(PI * x[:, 2:3])


def ac_initial(x):
    return x[:, 0:1] ** 2 * torch.cos(PI * x[:, 0:1])


VF_NU = 0.01 / PI  # viscous_front: Burgers' viscosity and the frame's speed
VF_SPEED = 0.5


def vf_initial(x):
    return VF_SPEED - torch.sin(PI * x[:, 0:1])


# Points per problem: (num_domain, num_boundary, num_initial), as the examples' fk.Sample counts
# (a periodic pair or a boundary point counts one each side).
POINTS = {
    "allen_cahn": (4096, 512, 512),
    "kdv": (4096, 512, 512),
    "wave": (4096, 512, 512),
    "kovasznay": (2601, 400, 0),
    "taylor_green": (4096, 1024, 1024),
    "heat2d": (4096, 1024, 1024),
    "klein_gordon": (4096, 512, 512),
    "poisson3d": (4096, 1536, 0),
    "viscous_front": (2560, 160, 160),
}


def _np_fn(fn, comp=None):
    """A numpy-in, numpy-out wrapper of a torch function of the points (for DirichletBC / IC)."""

    def f(x):
        out = fn(torch.as_tensor(x, dtype=torch.float64))
        if comp is not None:
            out = out[comp]
        return out.numpy()

    return f


def build(dde, name):
    """(data, n_outputs) of problem `name` as DeepXDE's examples write it."""
    grad, icbc, geo = dde.grad, dde.icbc, dde.geometry
    nd, nb, ni = POINTS[name]
    on_b = lambda _, on_boundary: on_boundary  # noqa: E731
    on_i = lambda _, on_initial: on_initial  # noqa: E731

    def t0(x, _):
        return dde.utils.isclose(x[-1], 0)

    if name in ("allen_cahn", "kdv", "wave", "klein_gordon", "viscous_front"):
        space = {
            "allen_cahn": geo.Interval(-1, 1),
            "viscous_front": geo.Interval(-1, 1),
            "kdv": geo.Interval(-8, 8),
            "wave": geo.Interval(0, 1),
            "klein_gordon": geo.Interval(0, 1),
        }[name]
        t_end = 4.0 if name == "kdv" else 1.0
        gt = geo.GeometryXTime(space, geo.TimeDomain(0, t_end))
        if name == "allen_cahn":

            def pde(x, y):
                y_t = grad.jacobian(y, x, i=0, j=1)
                y_xx = grad.hessian(y, x, i=0, j=0)
                return y_t - 1e-4 * y_xx - 5 * (y - y**3)

            bcs = [
                icbc.PeriodicBC(gt, 0, on_b, derivative_order=0),
                icbc.PeriodicBC(gt, 0, on_b, derivative_order=1),
                icbc.IC(gt, _np_fn(ac_initial), on_i),
            ]
        elif name == "viscous_front":  # DeepXDE's Burgers example, periodic, moving frame

            def pde(x, y):
                y_t = grad.jacobian(y, x, i=0, j=1)
                y_x = grad.jacobian(y, x, i=0, j=0)
                y_xx = grad.hessian(y, x, i=0, j=0)
                return y_t + y * y_x - VF_NU * y_xx

            bcs = [
                icbc.PeriodicBC(gt, 0, on_b, derivative_order=0),
                icbc.PeriodicBC(gt, 0, on_b, derivative_order=1),
                icbc.IC(gt, _np_fn(vf_initial), on_i),
            ]
        elif name == "kdv":

            def pde(x, y):
                y_t = grad.jacobian(y, x, i=0, j=1)
                y_x = grad.jacobian(y, x, i=0, j=0)
                y_xx = grad.hessian(y, x, i=0, j=0)
                y_xxx = grad.jacobian(y_xx, x, i=0, j=0)
                return y_t + 6 * y * y_x + y_xxx

            def right(x, on_boundary):
                return on_boundary and dde.utils.isclose(x[0], 8)

            bcs = [
                icbc.DirichletBC(gt, _np_fn(kdv_exact), on_b),
                icbc.OperatorBC(
                    gt, lambda x, y, _: grad.jacobian(y, x, i=0, j=0) - kdv_exact(x, 1), right
                ),
                icbc.IC(gt, _np_fn(kdv_exact), on_i),
            ]
        elif name == "wave":

            def pde(x, y):
                return grad.hessian(y, x, i=1, j=1) - 4.0 * grad.hessian(y, x, i=0, j=0)

            bcs = [
                icbc.DirichletBC(gt, _np_fn(wave_exact), on_b),
                icbc.IC(gt, _np_fn(wave_exact), on_i),
                icbc.OperatorBC(gt, lambda x, y, _: grad.jacobian(y, x, i=0, j=1), t0),
            ]
        else:

            def pde(x, y):
                y_tt = grad.hessian(y, x, i=1, j=1)
                y_xx = grad.hessian(y, x, i=0, j=0)
                return y_tt - y_xx + y**3 - kg_source(x)

            bcs = [
                icbc.DirichletBC(gt, _np_fn(kg_exact), on_b),
                icbc.IC(gt, _np_fn(kg_exact), on_i),
                icbc.OperatorBC(gt, lambda x, y, _: grad.jacobian(y, x, i=0, j=1), t0),
            ]
        return dde.data.TimePDE(gt, pde, bcs, num_domain=nd, num_boundary=nb, num_initial=ni), 1

    if name == "heat2d":
        gt = geo.GeometryXTime(geo.Rectangle([0, 0], [1, 1]), geo.TimeDomain(0, 1))

        def pde(x, y):
            k, k_x, k_y = heat_k(x)
            u_x, u_y = grad.jacobian(y, x, i=0, j=0), grad.jacobian(y, x, i=0, j=1)
            u_t = grad.jacobian(y, x, i=0, j=2)
            lap = grad.hessian(y, x, i=0, j=0) + grad.hessian(y, x, i=1, j=1)
            return u_t - k * lap - k_x * u_x - k_y * u_y - heat_source(x)

        bcs = [icbc.DirichletBC(gt, lambda x: 0, on_b), icbc.IC(gt, _np_fn(heat_exact), on_i)]
        return dde.data.TimePDE(gt, pde, bcs, num_domain=nd, num_boundary=nb, num_initial=ni), 1

    if name == "kovasznay":
        geom = geo.Rectangle([-0.5, -0.5], [1, 1.5])

        def pde(x, y):
            u, v = y[:, 0:1], y[:, 1:2]
            u_x, u_y = grad.jacobian(y, x, i=0, j=0), grad.jacobian(y, x, i=0, j=1)
            v_x, v_y = grad.jacobian(y, x, i=1, j=0), grad.jacobian(y, x, i=1, j=1)
            p_x, p_y = grad.jacobian(y, x, i=2, j=0), grad.jacobian(y, x, i=2, j=1)
            lap_u = grad.hessian(y, x, component=0, i=0, j=0) + grad.hessian(
                y, x, component=0, i=1, j=1
            )
            lap_v = grad.hessian(y, x, component=1, i=0, j=0) + grad.hessian(
                y, x, component=1, i=1, j=1
            )
            return [
                u * u_x + v * u_y + p_x - lap_u / KOV_RE,
                u * v_x + v * v_y + p_y - lap_v / KOV_RE,
                u_x + v_y,
            ]

        def outflow(x, on_boundary):
            return on_boundary and dde.utils.isclose(x[0], 1)

        bcs = [
            icbc.DirichletBC(geom, _np_fn(kov_exact, 0), on_b, component=0),
            icbc.DirichletBC(geom, _np_fn(kov_exact, 1), on_b, component=1),
            icbc.DirichletBC(geom, _np_fn(kov_exact, 2), outflow, component=2),
        ]
        return dde.data.PDE(geom, pde, bcs, num_domain=nd, num_boundary=nb), 3

    if name == "taylor_green":
        gt = geo.GeometryXTime(geo.Rectangle([0, 0], [2 * PI, 2 * PI]), geo.TimeDomain(0, 1))

        def pde(x, y):
            u, v = y[:, 0:1], y[:, 1:2]
            j = grad.jacobian
            u_x, u_y, u_t = j(y, x, i=0, j=0), j(y, x, i=0, j=1), j(y, x, i=0, j=2)
            v_x, v_y, v_t = j(y, x, i=1, j=0), j(y, x, i=1, j=1), j(y, x, i=1, j=2)
            p_x, p_y = j(y, x, i=2, j=0), j(y, x, i=2, j=1)
            h = grad.hessian
            lap_u = h(y, x, component=0, i=0, j=0) + h(y, x, component=0, i=1, j=1)
            lap_v = h(y, x, component=1, i=0, j=0) + h(y, x, component=1, i=1, j=1)
            return [
                u_t + u * u_x + v * u_y + p_x - TG_NU * lap_u,
                v_t + u * v_x + v * v_y + p_y - TG_NU * lap_v,
                u_x + v_y,
            ]

        bcs = [
            icbc.DirichletBC(gt, _np_fn(tg_exact, 0), on_b, component=0),
            icbc.DirichletBC(gt, _np_fn(tg_exact, 1), on_b, component=1),
            icbc.IC(gt, _np_fn(tg_exact, 0), on_i, component=0),
            icbc.IC(gt, _np_fn(tg_exact, 1), on_i, component=1),
        ]
        return dde.data.TimePDE(gt, pde, bcs, num_domain=nd, num_boundary=nb, num_initial=ni), 3

    if name == "poisson3d":
        geom = geo.Cuboid([0, 0, 0], [1, 1, 1])

        def pde(x, y):
            lap = sum(grad.hessian(y, x, i=k, j=k) for k in range(3))
            return -lap - 6 * PI**2 * poisson3d_exact(x)

        bcs = [icbc.DirichletBC(geom, lambda x: 0, on_b)]
        return dde.data.PDE(geom, pde, bcs, num_domain=nd, num_boundary=nb), 1

    raise ValueError(f"no DeepXDE form of {name!r}")


def exact_outputs(name, x):
    """The exact solution as DeepXDE's net outputs [N, n_out] (None: allen_cahn, no closed
    form)."""
    if name == "kovasznay":
        return torch.cat(kov_exact(x), 1)
    if name == "taylor_green":
        u, v = tg_exact(x)
        p = (
            -0.25
            * (torch.cos(2 * x[:, 0:1]) + torch.cos(2 * x[:, 1:2]))
            * torch.exp(-4 * TG_NU * x[:, 2:3])
        )
        return torch.cat([u, v, p], 1)
    fn = {"kdv": kdv_exact, "wave": wave_exact, "klein_gordon": kg_exact,
          "heat2d": heat_exact, "poisson3d": poisson3d_exact}.get(name)  # fmt: skip
    return None if fn is None else fn(x)


def check_exact(dde, name):
    """The largest |PDE residual| of the exact solution at the problem's training points, in
    float64 (zero up to rounding for a correct pde()); None where there is no closed form."""
    data, _ = build(dde, name)
    x = torch.as_tensor(data.train_x_all, dtype=torch.float64).requires_grad_(True)
    y = exact_outputs(name, x)
    if y is None:
        return None
    res = data.pde(x, y)
    res = res if isinstance(res, list) else [res]
    dde.grad.clear()
    worst = max(float(r.detach().abs().max()) for r in res)
    return worst


# Output columns of the DeepXDE net per error field (the flux form's columns differ).
COLUMNS = {"kovasznay": {"u": 0, "v": 1, "p": 2}, "taylor_green": {"u": 0, "v": 1}}


def run(name, eval_path, budget, interval, seed):
    torch.set_num_threads(1)
    import deepxde as dde

    ev = uc.load_eval(eval_path)
    points = ev["points"].astype(np.float32)
    cols = COLUMNS.get(name, {"u": 0})
    state = {"model": None}

    def evaluate():
        y = state["model"].predict(points)
        return {f: uc.relative_l2(y[:, cols[f]], ev["exact"][f]) for f in ev["error_fields"]}

    dde.config.set_random_seed(seed)
    torch.set_num_threads(1)
    trace = uc.Trace(budget, interval, evaluate)  # the clock starts here: set-up counts
    data, n_out = build(dde, name)
    net = dde.nn.FNN([ev["d"]] + [ev["width"]] * ev["depth"] + [n_out], "tanh", "Glorot normal")
    model = dde.Model(data, net)
    state["model"] = model
    info = {"adam_iterations": 0, "lbfgs_iterations": 0, "ended_by": "budget"}

    class Budget(dde.callbacks.Callback):
        def __init__(self, phase, until):
            super().__init__()
            self.phase, self.until = phase, until

        def on_epoch_end(self):
            step = self.model.train_state.step
            trace.step(step, self.phase)
            if trace.clock.now() >= self.until:
                self.model.stop_training = True

    kw = {"display_every": 10**9, "verbose": 0}
    model.compile("adam", lr=1e-3)
    model.train(iterations=10**9, callbacks=[Budget("adam", ADAM_SHARE * budget)], **kw)
    info["adam_iterations"] = model.train_state.step
    if trace.clock.now() < budget:
        dde.optimizers.set_LBFGS_options()  # DeepXDE's defaults (maxiter 15000)
        dde.optimizers.config.LBFGS_options["iter_per_step"] = 20
        dde.optimizers.config.LBFGS_options["fun_per_step"] = 25
        model.compile("L-BFGS")
        model.train(callbacks=[Budget("lbfgs", budget)], **kw)
        info["lbfgs_iterations"] = model.train_state.step - info["adam_iterations"]
        if trace.clock.now() < budget:
            info["ended_by"] = "L-BFGS finished (converged or maxiter 15000)"
    if not trace.times or trace.steps[-1] != model.train_state.step:
        trace.check(model.train_state.step, "end")
    return {
        **trace.as_dict(),
        **info,
        "contender": "DeepXDE",
        "versions": {
            "deepxde": dde.__version__,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
        "dtype": "float32 (DeepXDE's default)",
        "net": [ev["d"]] + [ev["width"]] * ev["depth"] + [n_out],
        "points": dict(zip(("domain", "boundary", "initial"), POINTS[name], strict=True)),
        "torch_threads": torch.get_num_threads(),
        "wall_s": round(time.perf_counter() - trace.clock.start, 2),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if argv is None and sys.argv[1:2] == ["--check-exact"]:  # the exact solutions' residuals
        import deepxde as dde

        dde.config.set_default_float("float64")
        print(json.dumps({n: check_exact(dde, n) for n in POINTS}))
        return 0
    p.add_argument("name", choices=sorted(POINTS))
    p.add_argument("eval", help="the evaluation .npz written by bench/users.py")
    p.add_argument("out", help="the result .json to write")
    p.add_argument("--budget", type=float, default=60.0)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        res = run(a.name, a.eval, a.budget, a.interval, a.seed)
    except Exception as exc:  # noqa: BLE001 -- a failed run is a row, not a crash
        res = {"contender": "DeepXDE", "error": f"{type(exc).__name__}: {exc}"}
    with open(a.out, "w") as fh:
        json.dump(res, fh)
    return 0 if "error" not in res else 1


if __name__ == "__main__":
    raise SystemExit(main())
