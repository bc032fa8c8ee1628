"""Residual-Jacobian benchmark: convection's interior block, r and dr/dtheta.

The convection problem as the solver builds it (flux form, MLP 2 -> 50 x 4 -> 1, tanh, 7851
parameters), its interior block ("pde", one residual) alone as one group, float64, on the CPU
with the torch threads given (default 1). Contenders: the fused op (fluxkern.ops.residual_jacobian,
backend "cpu"), its torch twin (backend "torch"), and torch.func.jacrev of the residuals through
the reference jet. jacrev materialises per-point graphs, so it runs on the first --n-func points
only and its time is also given per point. Results are checked to agree before timing.

Usage: python bench/bench_jacobian.py [--n 2048] [--n-func 256] [--threads 1] [--min-time 1.0]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import fluxkern  # noqa: E402
import fluxkern.problems as problems  # noqa: E402
from fluxkern import ops, reference, solver  # noqa: E402
from fluxkern.program import compile_group  # noqa: E402
from fluxkern.specs import MlpSpec  # noqa: E402


def jacrev_residuals(program, x, net: MlpSpec) -> torch.Tensor:
    """dr/dtheta [N, R, n_params] by torch.func.jacrev through the reference jet."""
    layout = ops.parameter_layout(net)

    def residuals_of(theta):
        ts = [
            theta[s.offset : s.offset + torch.Size(s.shape).numel()].view(s.shape) for s in layout
        ]
        return reference.residuals(
            program, x, MlpSpec(net.shift, net.scale, ts[0::2], ts[1::2], net.activation)
        )

    pairs = zip(net.weights, net.biases, strict=True)
    theta = torch.cat([t.detach().reshape(-1) for w, b in pairs for t in (w, b)])
    return torch.func.jacrev(residuals_of)(theta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048, help="interior points (PROBLEMS.md: 2048)")
    ap.add_argument("--n-func", type=int, default=256, help="points for torch.func.jacrev")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    f64, cpu = torch.float64, torch.device("cpu")
    p = problems.get("convection")
    p.defaults = {**p.defaults, "n_interior": args.n}
    torch.manual_seed(0)
    model = solver.build_model(p, "flux", f64, cpu)
    al = fluxkern.AugmentedLagrangian(model, p.flux_terms(0, f64, cpu))
    x, program = compile_group([al.bound["pde"]], f64, cpu)
    net = model.spec()
    n_params = sum(q.numel() for q in model.parameters())
    print(
        f"convection pde: N = {x.shape[0]}, R = {program.n_res}, n_params = {n_params}, "
        f"jac {x.shape[0] * program.n_res * n_params * 8 / 2**20:.0f} MiB, "
        f"threads {torch.get_num_threads()}"
    )

    r_op, j_op = ops.residual_jacobian(program, x, net, backend="cpu")
    r_tw, j_tw = ops.residual_jacobian(program, x, net, backend="torch")
    k = min(args.n_func, x.shape[0])
    sub = dataclasses.replace(program, cols=program.cols[:k])  # the first k points
    j_fn = jacrev_residuals(sub, x[:k], net)
    print(
        f"rel err op vs twin {common_rel(j_op, j_tw):.1e}, "
        f"op vs jacrev (first {k}) {common_rel(j_op[:k], j_fn):.1e}"
    )

    rows = []
    for name, fn, n in (
        (
            "fused op (cpu)",
            lambda: ops.residual_jacobian(program, x, net, backend="cpu"),
            x.shape[0],
        ),
        ("torch twin", lambda: ops.residual_jacobian(program, x, net, backend="torch"), x.shape[0]),
        ("torch.func.jacrev", lambda: jacrev_residuals(sub, x[:k], net), k),
    ):
        t = common.time_call(fn, min_time=args.min_time, warmup=1)
        rows.append(
            {
                "contender": name,
                "points": n,
                "ms": f"{t * 1e3:.1f}",
                "us/point": f"{t * 1e6 / n:.1f}",
            }
        )
    common.print_table(rows, ["contender", "points", "ms", "us/point"])


def common_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


if __name__ == "__main__":
    main()
