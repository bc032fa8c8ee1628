"""Makes the README's results table from results/<problem>/<formulation>/results.json.

Per problem: the flux form's final errors, epochs and wall time; from its trajectory (written by
``bench/run_problems.py --trace-every N``) the first recorded epoch and training time at which
every field the reference reports is at or below the reference's error (cavity: both centreline
deviations from Ghia et al. at or below 0.02); the reference's errors and epochs
(``Problem.reference``, ordinary relative L2) and its time on this machine: the plain PyTorch
implementation's seconds per epoch (float64, one thread, from the committed side-by-side bench
``--bench``) times the reference's epoch count; and the PINN form's final errors.

Usage: python bench/results_table.py [--results results]
       [--bench bench/results/cpu-amd-epyc-2c-2026-12-03.json]
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

DEFAULT_BENCH = "bench/results/cpu-amd-epyc-2c-2026-12-03.json"
CAVITY_TARGET = 0.02  # within 0.02 of Ghia's centrelines for u and v
CAVITY_KEYS = ("u centreline max dev", "v centreline max dev")


def _fmt_errors(errors: dict) -> str:
    return ", ".join(f"{k} {v:.1e}" for k, v in errors.items()) or "n/a"


def _fmt_time(s) -> str:
    if s is None:
        return "n/a"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def targets(name: str, reference: dict[str, Any]) -> dict[str, float]:
    """Errors to reach: the reference's per field, or cavity's centreline bound."""
    if name == "cavity":
        return dict.fromkeys(CAVITY_KEYS, CAVITY_TARGET)
    return dict(reference.get("errors", {}))


def first_reached(trajectory: list[dict], goal: dict[str, float]) -> dict | None:
    """The first trajectory point where every goal error is at or below its target."""
    if not goal:
        return None
    for point in trajectory:
        errs = point["errors"]
        if all(k in errs and errs[k] <= v for k, v in goal.items()):
            return point
    return None


def plain_seconds_per_epoch(bench_json: str) -> dict[str, float]:
    """Plain PyTorch autograd's seconds per epoch per problem (float64, one thread)."""
    if not os.path.exists(bench_json):
        return {}
    data = json.load(open(bench_json))
    out = {}
    for r in data["workloads"].get("problems", {}).get("results", []):
        if r["dtype"] == "float64" and r["threads"] == 1 and r["kind"] == "plain":
            out[r["problem"]] = r["epoch_ms"] / 1000.0
    return out


def _final_errors(r: dict) -> dict[str, float]:
    errs = dict(r["errors"])
    traj = r.get("trajectory") or []
    if traj and traj[-1]["epoch"] == r["epochs"]:
        for k in CAVITY_KEYS:
            if k in traj[-1]["errors"]:
                errs[k.replace(" centreline max dev", " dev.")] = traj[-1]["errors"][k]
    if "max_centreline_deviation" in r and not any(k.endswith(" dev.") for k in errs):
        errs["max centreline dev."] = r["max_centreline_deviation"]
    return errs


def options_text(opts: dict[str, Any]) -> str:
    """Options as "key value, key value" (numbers in %g)."""
    return ", ".join(
        f"{k} {v:g}" if isinstance(v, float | int) else f"{k} {v}" for k, v in opts.items()
    )


def settings(r: dict[str, Any]) -> str:
    """What a flux run changed from the reference's method: optimizer(s), options, seed and
    problem defaults (bench/run_problems.py --problem-default)."""
    out = []
    if r.get("optimizer", "lbfgs") != "lbfgs" or r.get("then_optimizer"):
        out.append(str(r.get("optimizer", "lbfgs")))
    if r.get("optimizer_options"):
        out.append(options_text(r["optimizer_options"]))
    if r.get("then_optimizer"):
        out.append(f"after epoch {r.get('switched_at_epoch')}: {r['then_optimizer']}")
        if r.get("then_optimizer_options"):
            out.append(options_text(r["then_optimizer_options"]))
    if r.get("seed", 0) != 0:
        out.append(f"seed {r['seed']}")
    if r.get("problem_overrides"):
        out.append(options_text(r["problem_overrides"]))
    for name, (start, epochs) in (r.get("continuation") or {}).items():
        out.append(f"{name} from {start:g} over {epochs} epochs")
    return f" ({'; '.join(out)})" if out else ""


def _row(root: str, name: str, plain: dict[str, float]) -> list[str]:
    from fluxkern import problems

    ref = problems.get(name).reference
    goal = targets(name, ref)
    cells = [name]
    path = os.path.join(root, name, "flux", "results.json")
    if os.path.exists(path):
        r = json.load(open(path))
        hit = first_reached(r.get("trajectory") or [], goal)
        reached = "no" if hit is None else f"epoch {hit['epoch']}, {_fmt_time(hit['train_s'])}"
        if not r.get("trajectory"):
            reached = "not traced"
        cells[0] += settings(r)
        cells += [
            _fmt_errors(_final_errors(r)),
            str(r["epochs"]),
            _fmt_time(r["wall_time_s"]),
            reached,
        ]
    else:
        cells += ["not run", "", "", ""]
    ref_epochs = ref.get("epochs")
    here = plain[name] * ref_epochs if name in plain and ref_epochs else None
    cells += [_fmt_errors(goal), str(ref_epochs or "n/a"), _fmt_time(here)]
    path = os.path.join(root, name, "pinn", "results.json")
    if os.path.exists(path):
        r = json.load(open(path))
        cells += [_fmt_errors(_final_errors(r)), f"{r['epochs']}, {_fmt_time(r['wall_time_s'])}"]
    else:
        cells += ["not run", ""]
    return cells


def table(root: str, bench_json: str = DEFAULT_BENCH) -> str:
    """The markdown table (see the module doc)."""
    from fluxkern import problems

    plain = plain_seconds_per_epoch(bench_json)
    rows = [
        "| problem | flux form: final error | epochs | wall time | reached the target at "
        "| target (reference, rel. L2) | reference epochs | reference time here "
        "| PINN form: final error | PINN epochs, time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in problems.names():
        rows.append("| " + " | ".join(_row(root, name, plain)) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results")
    p.add_argument("--bench", default=DEFAULT_BENCH)
    args = p.parse_args(argv)
    print(table(args.results, args.bench))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
