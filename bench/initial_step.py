"""The dense quasi-Newton optimizers' line-search start, "unit" (t = 1) against "secant" (the last
line's secant minimiser): evaluations, epochs and training seconds to each built-in problem's
reference error, and the errors on the way, on several seeds (docs/optimizers.md).

Each run is the problem's defaults (its committed setup; ssbroyden with the scale-free tests)
with only optimizer_options["initial_step"] changed, no automatic redraws and no unseen-point
check (so that the two differ by the start of the line search alone), one torch thread, in a
child process of its own; errors are checked every --every epochs (checks off the clock).

    python bench/initial_step.py --problems composite_heat helmholtz --seeds 0 1 2 \\
        --epochs 100 400 --every 10 25 [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

import torch

STEPS = ("unit", "secant")


def one(name: str, step: str, seed: int, epochs: int, every: int) -> dict[str, Any]:
    """One run in this process: the checks as (epoch, evaluations, training s, errors)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import defaults_trainer  # bench/common.py
    from evaluator import Evaluator  # bench/evaluator.py
    from fluxkern.problems import resolve
    from fluxkern.solver import effective_options
    from fluxkern.training.callbacks import Callback

    torch.set_num_threads(1)
    problem = resolve(name)
    base = effective_options(problem, seed=seed)
    options = {**(base.optimizer_options or {}), "initial_step": step}
    trainer = defaults_trainer(problem, seed, epochs, optimizer_options=options)
    evaluate = Evaluator(problem, torch.float64)
    rows: list[tuple[int, int, float, dict[str, float]]] = []
    off_clock = [0.0]

    class Checks(Callback):
        def on_epoch_end(self, tr: Any, record: Any) -> None:
            if record.epoch % every == 0:
                t0 = time.perf_counter()
                state = next(iter(tr.optimizer.state.values()))
                errors = evaluate(tr.model)
                rows.append((record.epoch, state["func_evals"], tr.elapsed - off_clock[0], errors))
                off_clock[0] += time.perf_counter() - t0

    trainer.fit(epochs, [Checks()])
    return {
        "problem": name,
        "initial_step": step,
        "seed": seed,
        "optimizer": type(trainer.optimizer).__name__,
        "reference": problem.reference.get("errors", {}),
        "rows": rows,
    }


def first_reached(run: dict[str, Any]) -> tuple[int, int, float] | None:
    """(epoch, evaluations, seconds) of the first check at or below the reference, or None."""
    ref = run["reference"]
    for epoch, evals, secs, errors in run["rows"]:
        if ref and all(errors.get(k, float("inf")) <= v for k, v in ref.items()):
            return epoch, evals, secs
    return None


def _fmt(errors: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1e}" for k, v in errors.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", nargs="+", default=["composite_heat", "helmholtz"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", nargs="+", type=int, default=[100, 400], help="per problem")
    ap.add_argument("--every", nargs="+", type=int, default=[10, 25], help="per problem")
    ap.add_argument("--json", help="also write the runs to this file")
    ap.add_argument("--one", nargs=5, help=argparse.SUPPRESS)  # name step seed epochs every
    a = ap.parse_args(argv)
    if a.one:
        name, step, seed, epochs, every = a.one
        print(json.dumps(one(name, step, int(seed), int(epochs), int(every))))
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import cpu_model  # bench/common.py

    load = os.getloadavg()[0]
    print(
        f"{cpu_model()}; Python {platform.python_version()}; torch {torch.__version__}; "
        f"load {load:.2f}"
    )
    runs = []
    print("| problem | seed | initial_step | reached at (epoch, evaluations, s) | last check |")
    print("|---|---|---|---|---|")
    for i, name in enumerate(a.problems):
        epochs, every = a.epochs[min(i, len(a.epochs) - 1)], a.every[min(i, len(a.every) - 1)]
        for seed in a.seeds:
            for step in STEPS:
                cmd = [sys.executable, __file__, "--one", name, step, str(seed), str(epochs)]
                out = subprocess.run([*cmd, str(every)], capture_output=True, text=True, check=True)
                run = json.loads(out.stdout.strip().splitlines()[-1])
                runs.append(run)
                hit = first_reached(run)
                at = f"{hit[0]}, {hit[1]}, {hit[2]:.1f}" if hit else "not reached"
                last = run["rows"][-1]
                print(f"| {name} | {seed} | {step} | {at} | epoch {last[0]}: {_fmt(last[3])} |")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"load_start": load, "runs": runs}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
