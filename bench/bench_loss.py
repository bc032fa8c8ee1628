"""Loss benchmark: one training step (loss + parameter gradient) of poisson in flux form.

8192 interior and 512 boundary points, MLP 2 -> 64 x 4 -> 3 (u, qx, qy), tanh. Contenders in one
run: the fused block-loss op, its torch twin, and a plain PyTorch implementation of the same loss
with torch.autograd.grad(create_graph=True). Also the fused jet alone on the same points (forward +
parameter gradient of sum y^2 + sum J^2), to show what the residual + loss part adds. The losses
are checked to agree before timing.

Usage: python bench/bench_loss.py [--n 8192] [--nb 512] [--dtypes float32 float64] [--json PATH]
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import fluxkern as fk  # noqa: E402


def poisson_terms(n: int, nb: int, dtype: torch.dtype):
    """The poisson demo of PROBLEMS.md in flux form: div q + f = 0, q = grad u, u = 0 on edges."""
    gen = torch.Generator().manual_seed(0)
    xi = torch.rand(n, 2, generator=gen, dtype=dtype)
    t = torch.rand(nb, generator=gen, dtype=dtype)
    side = torch.arange(nb) % 4
    xb = torch.stack(
        [
            torch.where(side == 0, 0.0, torch.where(side == 1, 1.0, t)),
            torch.where(side == 2, 0.0, torch.where(side == 3, 1.0, t)),
        ],
        1,
    ).to(dtype)
    f = 2 * math.pi**2 * torch.sin(math.pi * xi[:, 0]) * torch.sin(math.pi * xi[:, 1])
    x, y = fk.inputs("x y")
    u, qx, qy = fk.outputs("u qx qy")
    fd = fk.data("f")
    terms = [
        fk.Objective("pde", qx.d(x) + qy.d(y) + fd, xi, data={"f": f}),
        fk.Constraint("flux", [qx - u.d(x), qy - u.d(y)], xi),
        fk.Constraint("bc", u, xb),
    ]
    return terms, xi, xb, f


def plain_pytorch_step(seq, params, xi, xb, f, lam_flux, lam_bc):
    """The same loss written as users write it today: autograd.grad(create_graph=True)."""
    xr = xi.detach().requires_grad_(True)
    out = seq(xr)
    u, qx, qy = out[:, 0], out[:, 1], out[:, 2]
    (du,) = torch.autograd.grad(u.sum(), xr, create_graph=True)
    (dqx,) = torch.autograd.grad(qx.sum(), xr, create_graph=True)
    (dqy,) = torch.autograd.grad(qy.sum(), xr, create_graph=True)
    r = dqx[:, 0] + dqy[:, 1] + f
    c1 = (qx - du[:, 0]) ** 2
    c2 = (qy - du[:, 1]) ** 2
    cb = seq(xb)[:, 0] ** 2
    loss = (r * r).mean() + (lam_flux[:, 0] * c1 + lam_flux[:, 1] * c2).mean()
    loss = loss + (lam_bc[:, 0] * cb).mean()
    return loss, torch.autograd.grad(loss, params)


def run(args) -> list[dict]:
    rows: list[dict] = []
    for dname in args.dtypes:
        rows += run_dtype(args, dname)
    return rows


def run_dtype(args, dname: str) -> list[dict]:
    rows = []
    dtype = getattr(torch, dname)
    torch.manual_seed(0)
    net = fk.MLP(
        2,
        3,
        args.width,
        args.depth,
        "tanh",
        input_shift=[0.5, 0.5],
        input_scale=[1 / math.sqrt(12)] * 2,
        dtype=dtype,
    )
    params = list(net.parameters())
    terms, xi, xb, f = poisson_terms(args.n, args.nb, dtype)
    seq = net.to_sequential()
    seq_params = list(seq.parameters())
    als = {}
    for backend in ("cpu", "torch"):
        al = fk.AugmentedLagrangian(net, terms, backend=backend)
        for _ in range(2):  # non-trivial multipliers
            al.update_multipliers()
        als[backend] = al

    def fused_step(al):
        def step():
            loss = al()
            return loss, torch.autograd.grad(loss, params)

        return step

    steps = {
        "fluxkern fused (cpu)": fused_step(als["cpu"]),
        "fluxkern torch twin": fused_step(als["torch"]),
    }
    lam_flux, lam_bc = als["cpu"].multipliers["flux"], als["cpu"].multipliers["bc"]
    steps["plain PyTorch autograd.grad"] = lambda: plain_pytorch_step(
        seq, seq_params, xi, xb, f, lam_flux, lam_bc
    )
    xall = torch.cat([xi, xb])

    def jet_only():
        y, jac = net.jet(xall, backend="cpu")
        loss = (y * y).sum() + (jac * jac).sum()
        return loss, torch.autograd.grad(loss, params)

    ref = steps["fluxkern torch twin"]()[0].item()
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for name, step in steps.items():
        val = step()[0].item()
        if abs(val - ref) > tol * abs(ref):
            raise SystemExit(f"{name}: loss {val} differs from the twin's {ref}")
    times = {name: common.time_call(s, min_time=args.min_time) for name, s in steps.items()}
    t_jet = common.time_call(jet_only, min_time=args.min_time)
    t_fused = times["fluxkern fused (cpu)"]
    peak = common.gemm_peak_gflops(dtype)
    flops = common.jet_step_flops(2, args.width, args.depth, 3) * (args.n + args.nb)
    for name, t in [*times.items(), ("fused jet alone (same points)", t_jet)]:
        rows.append(
            {
                "dtype": dname,
                "impl": name,
                "ms/step": f"{t * 1e3:.2f}",
                "vs fused": f"{t / t_fused:.2f}x",
                "GFLOP/s": f"{flops / t / 1e9:.1f}",
                "of GEMM peak": f"{100 * flops / t / 1e9 / peak:.0f}%",
            }
        )
    rows.append(
        {
            "dtype": dname,
            "impl": "residual+loss overhead over jet alone",
            "ms/step": f"{(t_fused - t_jet) * 1e3:.2f}",
            "vs fused": f"{100 * (t_fused / t_jet - 1):+.0f}%",
        }
    )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--nb", type=int, default=512)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    info = common.machine_info()
    print(f"machine: {info['cpu']} ({info['cores']} cores, {info['torch_threads']} torch threads)")
    print(f"versions: python {info['python']}, torch {info['torch']}, fluxkern {info['fluxkern']}")
    print(
        f"poisson flux form: {args.n} interior + {args.nb} boundary points, MLP 2-"
        f"{args.width}x{args.depth}-3 tanh; one step = loss + parameter gradient"
    )
    rows = run(args)
    common.print_table(rows, ["dtype", "impl", "ms/step", "vs fused", "GFLOP/s", "of GEMM peak"])
    print("'vs fused' = this row's time / the fused step's time")
    if args.json:
        common.dump_json(args.json, {"machine": info, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
