"""Torch dispatches per L-BFGS epoch of a benchmark problem, by where the two-loop recursion runs.

On a GPU every dispatched op is a kernel launch (several microseconds each, plus Python), so at
the benchmark problems' sizes an epoch's time follows its op count more than its FLOPs. This
counts the top-level aten / fluxkern ops of one epoch as fluxkern.solve runs it (fused loss,
fluxkern.optim.LBFGS with the solver's settings, dual update), with the direction computed by
the fused CPU op (what fluxkern.optim.LBFGS does wherever the CPU op is built, also for GPU
parameters) and by the torch twin (what GPU parameters got before). Counted on the CPU: the op
counts are the device's too; the times are not measured here.

Usage: python bench/lbfgs_op_count.py [--problems poisson convection ...] [--warm-epochs 6]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import fluxkern as fk  # noqa: E402
import problem_steps as ps  # noqa: E402
from fluxkern import ops, reference  # noqa: E402


def _top_level_ops(prof: profile) -> collections.Counter:
    """Ops called from Python (not from inside another op), by name."""

    def is_op(name: str) -> bool:
        return name.startswith(("aten::", "fluxkern::"))

    return collections.Counter(
        e.name
        for e in prof.events()
        if is_op(e.name) and (e.cpu_parent is None or not is_op(e.cpu_parent.name))
    )


def count_epoch(name: str, twin: bool, warm_epochs: int) -> dict[str, object]:
    """Ops of one epoch of `name` (float64), after `warm_epochs` epochs fill the history.

    Args:
        name: A registered problem.
        twin: Compute the direction with the torch twin instead of the CPU op.
        warm_epochs: Epochs run before the counted one.

    Returns:
        {"problem", "direction", "evals", "directions", "ops", "top"}.
    """
    case = ps.make_case(name, torch.float64)
    fused = ps.FluxkernContender(case, "cpu")
    opt = case.lbfgs(fused.params, fk.optim.LBFGS)
    for _ in range(warm_epochs):
        ps.run_epoch(fused, opt)
    calls = [0]
    real = ops.lbfgs_direction

    def direction(*args, **kwargs):
        calls[0] += 1
        return (reference.lbfgs_direction if twin else real)(*args, **kwargs)

    ops.lbfgs_direction = direction
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            evals = ps.run_epoch(fused, opt)
    finally:
        ops.lbfgs_direction = real
    top = _top_level_ops(prof)
    return {
        "problem": name,
        "direction": "torch twin" if twin else "fused CPU op",
        "evals": evals,
        "directions": calls[0],
        "ops": sum(top.values()),
        "top": ", ".join(f"{k} {v}" for k, v in top.most_common(4)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", nargs="+", default=["poisson", "convection", "cavity"])
    p.add_argument("--warm-epochs", type=int, default=6)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    info = common.machine_info("cpu")
    print(f"machine: {info['cpu']}; torch {info['torch']}, fluxkern {info['fluxkern']}")
    rows = [
        count_epoch(name, twin, args.warm_epochs)
        for name in args.problems
        for twin in (False, True)
    ]
    common.print_table(rows, ["problem", "direction", "evals", "directions", "ops", "top"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
