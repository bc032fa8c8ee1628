"""Robustness on a moving front (issue 27, item 3): examples/viscous_front.py solved with
``fluxkern.solve`` at a time limit, with the defaults or with given options, one thread; the
error against time, the final error and what the unseen-point check said.

    OMP_NUM_THREADS=1 python bench/robustness.py LABEL [--time-limit 300] [--attr gradient]
        [--example viscous_front] [--option KEY=JSON ...] [--json FILE]
    python bench/robustness.py --table FILE.json    # the runs as a markdown table

Each run appends one entry to the JSON file (LABEL, options, machine, versions, load average
before and after, the trace, the results' errors and "unseen" figures). The clock is the
solver's (``--time-limit``: training time, error checks included: a prediction on the
evaluation grid every 2 epochs, a few ms each).
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

__all__ = ["main", "run"]


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(
    label: str,
    time_limit: float,
    attr: str,
    options: dict[str, Any],
    example: str = "viscous_front",
) -> dict[str, Any]:
    """One run of an example (the front problem by default); returns its record."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    import fluxkern as fk
    from fluxkern import solver

    target = os.path.join(ROOT, "examples", example + ".py") + (f":{attr}" if attr else "")
    prob = fk.problems.resolve(target)
    grid = prob.eval_grid(torch.float64, torch.device("cpu"))
    field = prob.error_fields[0]
    exact = prob.exact(grid.points)[field].numpy()
    trace: list[tuple[int, float, float]] = []
    t0 = time.perf_counter()

    def callback(epoch: int, model: torch.nn.Module) -> bool:
        if epoch % 2 == 0:
            pred = solver.predict(prob, model, "flux", grid.points)[field].numpy()
            err = float(np.linalg.norm(pred - exact) / np.linalg.norm(exact))
            trace.append((epoch, round(time.perf_counter() - t0, 2), err))
        return False

    load_before = os.getloadavg()[0]
    opts = {"epochs": 10**6, "time_limit": time_limit, "progress": False, "plots": False}
    res = solver.solve(prob, callback=callback, **{**opts, **options})
    unseen = res.get("unseen") or {}
    return {
        "label": label,
        "problem": prob.name,
        "options": options,
        "time_limit": time_limit,
        "errors": res["errors"],
        "epochs": res["epochs"],
        "wall_time_s": res["wall_time_s"],
        "optimizer_class": res["optimizer_class"],
        "final_loss": res["final_loss"],
        "final_max_violation": res["final_max_violation"],
        "unseen": {
            k: unseen.get(k)
            for k in (
                "untrustworthy",
                "suspect",
                "train_residual",
                "unseen_residual",
                "residual_ratio",
                "train_max_violation",
                "unseen_max_violation",
                "skipped",
            )
        },
        "resample_final_from": res.get("resample_final_from"),
        "resample_auto_from": res.get("resample_auto_from"),
        "trace": trace,
        "machine": {**solver.machine(), "uptime": _uptime()},
        "versions": solver.versions(),
        "commit": _commit(),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
    }


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def table(runs: list[dict[str, Any]]) -> str:
    """The runs as a markdown table (one row each)."""
    rows = [
        "| run | problem | options | u rel. L2 | epochs | unseen/train (pooled) | check | "
        "final phase from | auto redraws from | load before/after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        u = r["unseen"]
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "defaults"
        ratio, err = u.get("residual_ratio"), next(iter(r["errors"].values()))
        final = r.get("resample_final_from", "not recorded")
        rows.append(
            f"| {r['label']} | {r['problem']} | {opts} | {err:.2e} "
            f"| {r['epochs']} | {ratio:.3g} | {'warns' if u.get('untrustworthy') else 'quiet'} "
            f"| {final} | {r.get('resample_auto_from', 'not recorded')} "
            f"| {r['load_average_before']}/{r['load_average_after']} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    if argv is None and sys.argv[1:2] == ["--table"]:  # the JSON file's runs as markdown
        with open(sys.argv[2]) as fh:
            print(table(json.load(fh)))
        return 0
    p.add_argument("label")
    p.add_argument("--time-limit", type=float, default=300.0)
    p.add_argument("--attr", default="", help="a problem of the file other than `problem`")
    p.add_argument("--example", default="viscous_front", help="another file of examples/")
    p.add_argument("--option", action="append", default=[], metavar="KEY=JSON")
    p.add_argument("--json", default=os.path.join(HERE, "results", "robustness-2026-12-07.json"))
    args = p.parse_args(argv)
    options = {}
    for item in args.option:
        key, _, text = item.partition("=")
        options[key] = json.loads(text)
    rec = run(args.label, args.time_limit, args.attr, options, args.example)
    runs = []
    if os.path.exists(args.json):
        with open(args.json) as fh:
            runs = json.load(fh)
    runs.append(rec)
    with open(args.json, "w") as fh:
        json.dump(runs, fh, indent=1)
    tail = rec["trace"][-1] if rec["trace"] else None
    print(json.dumps({k: rec[k] for k in ("label", "errors", "epochs", "unseen")}), tail)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
