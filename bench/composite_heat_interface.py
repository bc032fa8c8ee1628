"""composite_heat with the defaults on one seed: the errors at a few epochs, and the flux
constraint sigma - k u_x near the interface x = 0 (|x| < 0.02) and away from it, at the training
points and at 20000 fresh uniform points; no automatic redraws, no unseen-point check.

    python bench/composite_heat_interface.py [SEED]
"""

from __future__ import annotations

import os
import sys

import torch
from torch import Tensor

from fluxkern import ops
from fluxkern.nn import mlp_spec
from fluxkern.problems import resolve
from fluxkern.problems.composite_heat import conductivity, exact

NEAR = 0.02  # |x| below this: near the interface


def stats(model: torch.nn.Module, x: Tensor) -> tuple[float, float, float, float]:
    """RMS of sigma - k u_x near / away from x = 0, and max |u - u_exact| near / away, at x."""
    with torch.no_grad():
        y, jac = ops.mlp_jet(x, mlp_spec(model), None)  # [N, 2], [N, 2, 2]
    c = y[:, 1] - conductivity(x) * jac[:, 0, 0]
    err = (y[:, 0] - exact(x)["u"]).abs()
    near = x[:, 0].abs() < NEAR
    return (
        float(c[near].square().mean().sqrt()),
        float(c[~near].square().mean().sqrt()),
        float(err[near].max()),
        float(err[~near].max()),
    )


def main(seed: int) -> int:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import defaults_trainer  # bench/common.py
    from evaluator import Evaluator  # bench/evaluator.py

    torch.set_num_threads(1)
    problem = resolve("composite_heat")
    trainer = defaults_trainer(problem, seed, 300)
    evaluate = Evaluator(problem, torch.float64)
    gen = torch.Generator().manual_seed(7)
    fresh = torch.rand(20000, 2, generator=gen, dtype=torch.float64) * torch.tensor([2.0, 2.0])
    fresh[:, 0] -= 1.0  # x in [-1, 1], t in [0, 2]
    train = next(b.x for b in trainer.al.bound.values() if b.block.name == "pde")
    n_near = int((train[:, 0].abs() < NEAR).sum())
    print(f"seed {seed}; training points within {NEAR} of x = 0: {n_near} of {train.shape[0]}")
    print(
        "| epoch | errors | sigma - k u_x RMS near / away: training | fresh "
        "| max u error near / away (fresh) |"
    )
    print("|---|---|---|---|---|")
    for epoch in (60, 140, 300):
        trainer.fit(epoch)
        errs = ", ".join(f"{k} {v:.1e}" for k, v in evaluate(trainer.model).items())
        a, b = stats(trainer.model, train), stats(trainer.model, fresh)
        print(
            f"| {epoch} | {errs} | {a[0]:.1e} / {a[1]:.1e} | {b[0]:.1e} / {b[1]:.1e} "
            f"| {b[2]:.1e} / {b[3]:.1e} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2))
