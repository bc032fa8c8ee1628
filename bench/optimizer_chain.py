"""One optimizer for a training-time budget, then another from where it stopped (issue 13).

Gauss-Newton from a random start made no progress on helmholtz (bench/results/optimizers), and
L-BFGS stops moving once max |gradient| <= its tolerance_grad (1e-7, torch's default, which the
method's reference code used too). This script runs the first optimizer for `t1` training
seconds and then swaps in the second (same model, points and multipliers; the dual update stays
one per epoch) for `t2` more. Errors (bench/fidelity.py's Evaluator) are recorded at log-spaced
training times, evaluation time excluded, into a JSON file with machine and versions.

Usage: python bench/optimizer_chain.py PROBLEM FIRST T1 SECOND T2 OUT.json [--seed 0]
           [--tolerance-grad G] [--tolerance-change C] [--curvature-eps E]
           [--second-options JSON]
       (FIRST, SECOND: lbfgs, ssbfgs, ssbroyden or gauss_newton; the tolerances are the first
       optimizer's stopping tests, by default its own: 1e-7 and 1e-9 for the quasi-Newton ones)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_info  # noqa: E402
from fidelity import Evaluator  # noqa: E402
from fluxkern import problems, solver  # noqa: E402
from fluxkern.optim.by_name import make_optimizer  # noqa: E402
from fluxkern.training import Callback, EpochRecord, TimeBudget, Trainer  # noqa: E402


def _scalars(opt: torch.optim.Optimizer) -> dict[str, float]:
    """The optimizer's scalar state (iterations, evaluations, damping, H resets, ...)."""
    states = list(opt.state.values())
    first = states[0] if states else {}
    return {k: v for k, v in first.items() if isinstance(v, (int, float)) and v == v}


class LogRecord(Callback):
    """Errors at training times growing by a factor (evaluation time excluded)."""

    def __init__(self, evaluator: Evaluator, out: str, payload: dict[str, Any]) -> None:
        self.evaluator, self.out, self.payload = evaluator, out, payload
        self.excluded, self.next = 0.0, 0.0

    def record(self, trainer: Trainer) -> None:
        t0 = time.perf_counter()
        entry = {
            "epoch": trainer.epoch,
            "train_s": trainer.elapsed - self.excluded,
            "optimizer": type(trainer.optimizer).__name__,
            "errors": self.evaluator(trainer.model),
            "optimizer_state": _scalars(trainer.optimizer),
        }
        self.payload["trajectory"].append(entry)
        print(json.dumps(entry), flush=True)
        tmp = self.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.payload, f, indent=1)
        os.replace(tmp, self.out)
        self.next = entry["train_s"] * 1.15 + 1.0
        self.excluded += time.perf_counter() - t0

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        if trainer.elapsed - self.excluded >= self.next:
            self.record(trainer)
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("problem")
    p.add_argument("first")
    p.add_argument("t1", type=float)
    p.add_argument("second")
    p.add_argument("t2", type=float)
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--tolerance-grad",
        type=float,
        default=None,
        help="the first optimizer's tolerance_grad (lbfgs, ssbfgs, ssbroyden; default: theirs)",
    )
    p.add_argument(
        "--tolerance-change",
        type=float,
        default=None,
        help="the first optimizer's tolerance_change (default: its own)",
    )
    p.add_argument(
        "--curvature-eps",
        type=float,
        default=None,
        help="the first optimizer's scale-free curvature test (lbfgs, ssbfgs, ssbroyden)",
    )
    p.add_argument(
        "--second-options",
        type=json.loads,
        default=None,
        help="JSON object of the second optimizer's options (SolveOptions.optimizer_options)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    prob = problems.get(args.problem)
    opts = solver.effective_options(prob, optimizer=args.first, seed=args.seed)
    trainer = solver.make_trainer(prob, opts)
    group = trainer.optimizer.param_groups[0]
    for key in ("tolerance_grad", "tolerance_change", "curvature_eps"):
        value = getattr(args, key)
        if value is not None:
            if key not in group:
                raise SystemExit(f"{args.first} has no {key}")
            group[key] = value
    payload: dict[str, Any] = {
        "problem": args.problem,
        "chain": [[args.first, args.t1], [args.second, args.t2]],
        "seed": args.seed,
        "first_tolerances": {
            k: group.get(k) for k in ("tolerance_grad", "tolerance_change", "curvature_eps")
        },
        "second_options": args.second_options or {},
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "trajectory": [],
    }
    rec = LogRecord(Evaluator(prob, torch.float64), args.out, payload)
    trainer.fit(10**9, [rec, TimeBudget(args.t1)])
    second = solver.effective_options(prob, optimizer=args.second, seed=args.seed)
    trainer.optimizer = make_optimizer(
        second.optimizer, trainer.params, trainer.al, second.lr, args.second_options
    )
    trainer.uses_closure = not isinstance(trainer.optimizer, torch.optim.Adam)
    rec.next = 0.0
    trainer.fit(10**9, [rec, TimeBudget(args.t1 + args.t2)])
    if payload["trajectory"][-1]["epoch"] != trainer.epoch:
        rec.record(trainer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
