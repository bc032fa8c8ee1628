"""composite_heat with one setting changed (any fluxkern.solve option, as JSON), one seed: the
epoch (and training seconds) at which the run first reaches the reference's u 4.2e-3 and
sigma 1.5e-3, checked every 5 epochs on the problem's evaluation grid (checks off the clock),
the errors every 25 epochs and at the end. Everything else is the problem's defaults (its
committed setup, with the unseen-point check and the automatic redraws on).

    python bench/composite_heat_seeds.py SEED '{"output_scale": {"sigma": 10.0}}' [EPOCHS]
        [--stop-at-hit]

One torch thread; prints one line: the hit (epoch, training seconds), the closure evaluations
up to that epoch (the load-free measure of the work; seconds follow the machine's speed), the
final u, seconds per epoch and the errors logged. --stop-at-hit ends the run at the hit.
bench/results/composite-heat-output-scale-2026-12-07.md ran it over seeds 0-9 for three
settings, composite-heat-seed-spread-2026-12-08.md over seeds 0-3 (0-5) for eight.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fluxkern as fk  # noqa: E402
from evaluator import Evaluator  # noqa: E402  (bench/evaluator.py)
from fluxkern import problems  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    if len(sys.argv) < 3:
        sys.exit("usage: python bench/composite_heat_seeds.py SEED JSON [EPOCHS] [--stop-at-hit]")
    seed, kw = int(sys.argv[1]), json.loads(sys.argv[2])
    epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 150
    stop_at_hit = "--stop-at-hit" in sys.argv[4:]
    ev = Evaluator(problems.resolve("composite_heat"), torch.float64)
    hit: list = [None]
    log: list = []
    spent = [0.0]
    t0 = time.perf_counter()

    def check(epoch: int, model: torch.nn.Module) -> bool:
        if epoch % 5 == 0:
            c0 = time.perf_counter()
            e = ev(model)
            spent[0] += time.perf_counter() - c0
            if e["u"] <= 4.2e-3 and e["sigma"] <= 1.5e-3 and hit[0] is None:
                hit[0] = (epoch, round(time.perf_counter() - t0 - spent[0], 1))
                return stop_at_hit
            if epoch % 25 == 0:
                log.append((epoch, f"{e['u']:.1e}"))
        return False

    out = tempfile.mkdtemp(prefix="composite_heat_seeds-")
    res = fk.solve(
        "composite_heat",
        seed=seed,
        epochs=epochs,
        callback=check,
        progress=False,
        plots=False,
        out=out,
        **kw,
    )
    with open(os.path.join(out, "history.json")) as f:
        evals = json.load(f)["evals"]
    shutil.rmtree(out, ignore_errors=True)
    per = (time.perf_counter() - t0 - spent[0]) / len(evals)
    print(
        seed,
        sys.argv[2],
        "reached",
        hit[0],
        "evaluations",
        sum(evals[: hit[0][0]]) if hit[0] else None,
        f"final u {res['errors']['u']:.2e}",
        f"s/epoch {per:.3f}",
        log,
        flush=True,
    )


if __name__ == "__main__":
    main()
