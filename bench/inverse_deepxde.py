"""The DeepXDE contender of the inverse workload (bench/inverse.py): each inverse example of
examples/ written as DeepXDE's inverse examples write it, run by its documented recipe at a
wall-time budget.

Recipe (DeepXDE's examples/pinn_inverse, e.g. Navier_Stokes_inverse.py, diffusion_1d_inverse.py):
the unknown constants are ``dde.Variable`` (raw values, no positivity) in a second-order PINN
residual; the measurements are ``dde.icbc.PointSetBC``; the unknowns are passed to
``model.compile(..., external_trainable_variables=...)``; float32; Adam at lr 1e-3 for half the
budget, then L-BFGS (20 iterations per step so the budget and the checks act between steps).
A field (the conductivity) is a second network output. Same data (examples/data/*.csv), net
size and point counts as the fluxkern example.

    DDE_BACKEND=pytorch .venv-bench/bin/python bench/inverse_deepxde.py NAME EVAL.npz OUT.json
        --budget 300 [--interval 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time

import users_common as uc

if __name__ == "__main__":  # one thread before torch loads
    uc.one_thread()
    os.environ.setdefault("DDE_BACKEND", "pytorch")

import numpy as np  # noqa: E402
import torch  # noqa: E402

PI = math.pi
ADAM_SHARE = 0.5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "examples", "data")
RE = 20.0
LAM = RE / 2 - math.sqrt(RE**2 / 4 + 4 * PI**2)
# The truths of the unknowns (for the error report) and DeepXDE's output columns per field.
TRUTH = {
    "inverse_heat": {"kappa": 0.1},
    "inverse_kovasznay": {"c1": 1.0, "c2": 1.0 / RE},
    "inverse_conductivity": {},
}
COLUMNS = {
    "inverse_heat": {"u": 0},
    "inverse_kovasznay": {"u": 0, "v": 1, "p": 2},
    "inverse_conductivity": {"u": 0, "k": 1},
}


def read_csv(name: str) -> dict[str, np.ndarray]:
    with open(os.path.join(DATA, name + ".csv"), newline="") as fh:
        rows = list(csv.reader(fh))
    table = np.array(rows[1:], dtype=np.float64)
    return {h: table[:, j] for j, h in enumerate(rows[0])}


def build(dde, name):
    """(data, n_outputs, variables by name) of problem `name` as DeepXDE's examples write it."""
    grad, icbc, geo = dde.grad, dde.icbc, dde.geometry
    on_b = lambda _, on_boundary: on_boundary  # noqa: E731
    on_i = lambda _, on_initial: on_initial  # noqa: E731
    obs = read_csv(name)
    if name == "inverse_heat":
        kappa = dde.Variable(1.0)
        gt = geo.GeometryXTime(geo.Rectangle([0, 0], [1, 1]), geo.TimeDomain(0, 1))

        def pde(x, y):
            y_t = grad.jacobian(y, x, i=0, j=2)
            lap = grad.hessian(y, x, i=0, j=0) + grad.hessian(y, x, i=1, j=1)
            return y_t - kappa * lap

        def initial(x):
            return np.sin(PI * x[:, 0:1]) * np.sin(PI * x[:, 1:2])

        pts = np.stack([obs["x"], obs["y"], obs["t"]], 1)
        bcs = [
            icbc.DirichletBC(gt, lambda x: np.zeros((len(x), 1)), on_b),
            icbc.IC(gt, initial, on_i),
            icbc.PointSetBC(pts, obs["u"][:, None], component=0),
        ]
        data = dde.data.TimePDE(
            gt, pde, bcs, num_domain=2000, num_boundary=400, num_initial=400, anchors=pts
        )
        return data, 1, {"kappa": kappa}
    if name == "inverse_kovasznay":
        c1, c2 = dde.Variable(0.5), dde.Variable(0.5)
        rect = geo.Rectangle([-0.5, -0.5], [1.0, 1.5])

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
                c1 * (u * u_x + v * u_y) + p_x - c2 * lap_u,
                c1 * (u * v_x + v * v_y) + p_y - c2 * lap_v,
                u_x + v_y,
            ]

        def wall(comp):
            def f(x):
                e = np.exp(LAM * x[:, 0:1])
                c, s = np.cos(2 * PI * x[:, 1:2]), np.sin(2 * PI * x[:, 1:2])
                return (1 - e * c) if comp == 0 else LAM / (2 * PI) * e * s

            return f

        pts = np.stack([obs["x"], obs["y"]], 1)
        bcs = [
            icbc.DirichletBC(rect, wall(0), on_b, component=0),
            icbc.DirichletBC(rect, wall(1), on_b, component=1),
            icbc.PointSetBC(pts, obs["u"][:, None], component=0),
            icbc.PointSetBC(pts, obs["v"][:, None], component=1),
            icbc.PointSetBC(pts, obs["p"][:, None], component=2),
        ]
        data = dde.data.PDE(rect, pde, bcs, num_domain=2000, num_boundary=400, anchors=pts)
        return data, 3, {"c1": c1, "c2": c2}
    if name == "inverse_conductivity":
        line = geo.Interval(0, 1)

        def source(x):
            k = 1 + 0.5 * torch.sin(2 * PI * x)
            dk = PI * torch.cos(2 * PI * x)
            du = 1 + 0.2 * PI * torch.cos(PI * x)
            d2u = -0.2 * PI**2 * torch.sin(PI * x)
            return -(dk * du + k * d2u)

        def pde(x, y):
            k = y[:, 1:2]
            u_x = grad.jacobian(y, x, i=0, j=0)
            k_x = grad.jacobian(y, x, i=1, j=0)
            u_xx = grad.hessian(y, x, component=0, i=0, j=0)
            return -(k_x * u_x + k * u_xx) - source(x)

        pts = obs["x"][:, None]
        bcs = [
            icbc.DirichletBC(line, lambda x: x + 0.2 * np.sin(PI * x), on_b, component=0),
            icbc.DirichletBC(line, lambda x: np.ones((len(x), 1)), on_b, component=1),
            icbc.PointSetBC(pts, obs["u"][:, None], component=0),
        ]
        data = dde.data.PDE(line, pde, bcs, num_domain=400, num_boundary=2, anchors=pts)
        return data, 2, {}
    raise ValueError(f"no DeepXDE form of {name!r}")


def run(name, eval_path, budget, interval, seed):
    torch.set_num_threads(1)
    import deepxde as dde

    ev = uc.load_eval(eval_path)
    points = ev["points"].astype(np.float32)
    cols = COLUMNS[name]
    state = {"model": None, "vars": {}}

    def evaluate():
        y = state["model"].predict(points)
        out = {f: uc.relative_l2(y[:, cols[f]], ev["exact"][f]) for f in ev["error_fields"]}
        for n, var in state["vars"].items():
            truth = TRUTH[name][n]
            out[n] = abs(float(var.detach()) - truth) / abs(truth)
        return out

    dde.config.set_random_seed(seed)
    torch.set_num_threads(1)
    trace = uc.Trace(budget, interval, evaluate)  # the clock starts here: set-up counts
    data, n_out, variables = build(dde, name)
    state["vars"] = variables
    net = dde.nn.FNN([ev["d"]] + [ev["width"]] * ev["depth"] + [n_out], "tanh", "Glorot normal")
    model = dde.Model(data, net)
    state["model"] = model
    info = {"adam_iterations": 0, "lbfgs_iterations": 0, "ended_by": "budget"}
    ext = list(variables.values())

    class Budget(dde.callbacks.Callback):
        def __init__(self, phase, until):
            super().__init__()
            self.phase, self.until = phase, until

        def on_epoch_end(self):
            trace.step(self.model.train_state.step, self.phase)
            if trace.clock.now() >= self.until:
                self.model.stop_training = True

    kw = {"display_every": 10**9, "verbose": 0}
    model.compile("adam", lr=1e-3, external_trainable_variables=ext or None)
    model.train(iterations=10**9, callbacks=[Budget("adam", ADAM_SHARE * budget)], **kw)
    info["adam_iterations"] = model.train_state.step
    if trace.clock.now() < budget:
        dde.optimizers.set_LBFGS_options()
        dde.optimizers.config.LBFGS_options["iter_per_step"] = 20
        dde.optimizers.config.LBFGS_options["fun_per_step"] = 25
        model.compile("L-BFGS", external_trainable_variables=ext or None)
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
        "identified": {n: float(v.detach()) for n, v in variables.items()},
        "versions": {
            "deepxde": dde.__version__,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
        "dtype": "float32 (DeepXDE's default)",
        "net": [ev["d"]] + [ev["width"]] * ev["depth"] + [n_out],
        "torch_threads": torch.get_num_threads(),
        "wall_s": round(time.perf_counter() - trace.clock.start, 2),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", choices=sorted(TRUTH))
    p.add_argument("eval", help="the evaluation .npz written by bench/inverse.py")
    p.add_argument("out", help="the result .json to write")
    p.add_argument("--budget", type=float, default=300.0)
    p.add_argument("--interval", type=float, default=2.0)
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
