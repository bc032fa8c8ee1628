"""What the dual update's reuse of the last evaluation saves per epoch, measured A/B.

Since ccece09 AugmentedLagrangian.update_multipliers takes the constraint values of the last loss
call when nothing they depend on has changed (after an L-BFGS step nothing has), instead of one
more evaluation. This runs the epochs of the benchmark problems as fluxkern.solve runs them
(fused loss, fluxkern.optim.LBFGS with the solver's settings, float64, one thread) from one saved
start state, alternating reuse on and off (off: the remembered evaluation is never taken), so that
a drifting machine affects both alike. Before timing it checks that both give bitwise the same
parameters, multipliers and loss after the epoch.

Usage: python bench/dual_reuse_ab.py [--problems poisson convection cavity] [--reps 11]
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
from fluxkern import lagrangian  # noqa: E402

_REUSE = lagrangian._Evaluation.still_current


def _set_reuse(on: bool) -> None:
    lagrangian._Evaluation.still_current = _REUSE if on else (lambda self, al: False)


def _outcome(c: ps.FluxkernContender) -> list[torch.Tensor]:
    return [p.detach().clone() for p in c.params] + [v.clone() for v in c.al.multipliers.values()]


def measure(name: str, reps: int, warm_epochs: int) -> dict[str, Any]:
    """Median epoch times with and without reuse, from the same start, alternating.

    Args:
        name: A registered problem.
        reps: Epochs timed per setting.
        warm_epochs: Epochs run before the start state is saved (fills the pair history).

    Returns:
        A table row.
    """
    case = ps.make_case(name, torch.float64)
    c = ps.FluxkernContender(case, "cpu")
    opt = case.lbfgs(c.params, fk.optim.LBFGS)
    for _ in range(warm_epochs):
        ps.run_epoch(c, opt)
    start, opt_start = c.state(), copy.deepcopy(opt.state_dict())

    def epoch(reuse: bool) -> tuple[float, list[torch.Tensor]]:
        _set_reuse(reuse)
        c.load_state(start)
        opt.load_state_dict(copy.deepcopy(opt_start))
        t = time.perf_counter()
        ps.run_epoch(c, opt)
        return time.perf_counter() - t, _outcome(c)

    try:
        same = all(torch.equal(a, b) for a, b in zip(epoch(True)[1], epoch(False)[1], strict=True))
        if not same:
            raise SystemExit(f"{name}: reuse changed the epoch's result; not timed")
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(reps):
            for reuse in (True, False):
                times[reuse].append(epoch(reuse)[0])
    finally:
        _set_reuse(True)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    return {
        "problem": name,
        "epoch ms, reuse": f"{on * 1e3:.1f}",
        "epoch ms, evaluating": f"{off * 1e3:.1f}",
        "saved ms": f"{(off - on) * 1e3:.1f}",
        "saved": f"{(off - on) / off:.1%}",
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
