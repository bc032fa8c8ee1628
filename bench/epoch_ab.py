"""What two savings of an epoch's bookkeeping are worth, measured A/B on the users' problems.

1. The dual update's reuse (ccece09): AugmentedLagrangian.update_multipliers takes the constraint
   values of the last loss call when nothing they depend on has changed (after an L-BFGS step
   nothing has), instead of one more evaluation.
2. The closure without autograd: AugmentedLagrangian.loss_and_backward writes the fused op's
   gradients to .grad directly instead of ``loss = al(); loss.backward()`` (what
   fluxkern.solve's closure calls).

Epochs run as fluxkern.solve runs them (fused loss, fluxkern.optim.LBFGS with the solver's
settings, float64, one thread) from one saved start state, cycling through the settings (both
off, reuse only, both on) so that a drifting machine affects all alike. Before timing it checks
that all settings give bitwise the same parameters and multipliers after the epoch.

Usage: python bench/epoch_ab.py [--problems poisson convection cavity] [--reps 11]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import fluxkern as fk  # noqa: E402
import problem_steps as ps  # noqa: E402
from fluxkern import evaluation  # noqa: E402

_REUSE = evaluation.Evaluation.still_current
# (label, dual update reuses, closure without autograd)
SETTINGS = [("neither", False, False), ("reuse", True, False), ("both", True, True)]


def _set_reuse(on: bool) -> None:
    evaluation.Evaluation.still_current = _REUSE if on else (lambda self, net, others: False)


class _SwitchableClosure(ps.FluxkernContender):
    """The fused contender, closing with al.loss_and_backward() (no_autograd) or with
    ``loss = al(); loss.backward()``."""

    no_autograd = True

    def loss_and_backward(self) -> torch.Tensor:
        if self.no_autograd:
            return super().loss_and_backward()
        return ps.Contender.loss_and_backward(self)


def _outcome(c: ps.FluxkernContender) -> list[torch.Tensor]:
    return [p.detach().clone() for p in c.params] + [v.clone() for v in c.al.multipliers.values()]


def measure(name: str, reps: int, warm_epochs: int) -> dict[str, Any]:
    """Median epoch times of the three settings, from the same start, cycling.

    Args:
        name: A registered problem.
        reps: Epochs timed per setting.
        warm_epochs: Epochs run before the start state is saved (fills the pair history).

    Returns:
        A table row.
    """
    case = ps.make_case(name, torch.float64)
    c = _SwitchableClosure(case, "cpu")
    opt = case.lbfgs(c.params, fk.optim.LBFGS)
    for _ in range(warm_epochs):
        ps.run_epoch(c, opt)
    start, opt_start = c.state(), copy.deepcopy(opt.state_dict())

    def epoch(reuse: bool, no_autograd: bool) -> tuple[float, list[torch.Tensor]]:
        _set_reuse(reuse)
        c.no_autograd = no_autograd
        c.load_state(start)
        opt.load_state_dict(copy.deepcopy(opt_start))
        t = time.perf_counter()
        ps.run_epoch(c, opt)
        return time.perf_counter() - t, _outcome(c)

    try:
        outcomes = [epoch(reuse, no_autograd)[1] for _, reuse, no_autograd in SETTINGS]
        for other in outcomes[1:]:
            if not all(torch.equal(a, b) for a, b in zip(outcomes[0], other, strict=True)):
                raise SystemExit(f"{name}: the settings changed the epoch's result; not timed")
        times: dict[str, list[float]] = {label: [] for label, _, _ in SETTINGS}
        for _ in range(reps):
            for label, reuse, no_autograd in SETTINGS:
                times[label].append(epoch(reuse, no_autograd)[0])
    finally:
        _set_reuse(True)
    med = {label: statistics.median(v) * 1e3 for label, v in times.items()}
    base = med["neither"]
    return {
        "problem": name,
        "epoch ms, neither": f"{base:.1f}",
        "+ dual reuse": f"{med['reuse']:.1f} ({(base - med['reuse']) / base:.1%} less)",
        "+ closure without autograd": f"{med['both']:.1f} ({(base - med['both']) / base:.1%} less)",
        "same result": "bitwise",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", nargs="+", default=["poisson", "convection", "cavity"])
    p.add_argument("--reps", type=int, default=11)
    p.add_argument("--warm-epochs", type=int, default=6)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    info = common.machine_info("cpu")
    peak = common.gemm_peak_gflops(torch.float64)
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, 1 torch thread; Python "
        f"{info['python']}, torch {info['torch']}, fluxkern {info['fluxkern']}; float64 GEMM "
        f"peak {peak:.1f} GFLOP/s; {args.reps} epochs per setting, median"
    )
    rows = [measure(name, args.reps, args.warm_epochs) for name in args.problems]
    common.print_table(rows, list(rows[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
