"""Long runs of one problem with different optimizers, compared on one plot (issue 13).

The inputs are results.json files of bench/run_problems.py runs traced with --trace-every
(the error trajectory against training seconds, evaluations excluded), copied into
<out>/long/<problem>-<tag>.json: e.g. the committed results/ run of a problem and the L-BFGS
run it replaced (from git). bench/optimizers.py's report adds a section with one table per
problem (the first training time at or below the reference's error and at 1e-3, 1e-4, 1e-5) and
a plot <out>/long-<problem>.png (error vs seconds, log-log).

Usage: python bench/long_runs.py RESULTS_JSON TAG [--note TEXT] [--out bench/results/optimizers]
       (copies the file to <out>/long/<problem>-<TAG>.json with the note, e.g. how loaded the
       machine was, then remakes the report)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from results_table import options_text, settings  # noqa: E402


def label(run: dict[str, Any]) -> str:
    """The optimizer(s), options and changed problem defaults of a run (as in the README's
    results table, with L-BFGS named)."""
    text = settings({**run, "seed": 0}).strip(" ()")
    if run.get("optimizer", "lbfgs") == "lbfgs" and not run.get("then_optimizer"):
        return "lbfgs; " + text if text else "lbfgs (the reference's settings)"
    return text


def short_label(run: dict[str, Any]) -> str:
    """The plot's legend: the optimizer(s) and changed problem defaults (no optimizer options)."""
    text = run.get("optimizer", "lbfgs")
    if run.get("then_optimizer"):
        text += f" -> {run['then_optimizer']} (epoch {run.get('switched_at_epoch')})"
    over = run.get("problem_overrides")
    return text + (f"; {options_text(over)}" if over else "")


def load(long_dir: str) -> dict[str, list[dict[str, Any]]]:
    """The runs in long_dir by problem (files sorted by name)."""
    runs: dict[str, list[dict[str, Any]]] = {}
    if not os.path.isdir(long_dir):
        return runs
    for f in sorted(os.listdir(long_dir)):
        if f.endswith(".json"):
            with open(os.path.join(long_dir, f)) as fh:
                data = json.load(fh)
            if data.get("trajectory"):
                runs.setdefault(data["problem"], []).append(data)
    return runs


def section(out_dir: str) -> list[str]:
    """Markdown lines for the long runs (plots written beside); [] when there are none."""
    from optimizers import PRIMARY, THRESHOLDS, _fmt, first_time_below, table_head

    columns = ["optimizer", "date", "epochs", "train s", "final error"]

    runs = load(os.path.join(out_dir, "long"))
    if not runs:
        return []
    out = [
        "## Long runs (bench/long_runs.py: results/ runs of bench/run_problems.py)",
        "",
        "Each traced every 25-250 epochs (so a t(x) is an upper bound within that spacing); "
        "machine and load per row.",
        "",
    ]
    for name, group in runs.items():
        key = PRIMARY.get(name, "u")
        ref = group[0].get("reference", {}).get("errors", {}).get(key)
        levels = ([ref] if ref else []) + list(THRESHOLDS)
        out += [
            f"### {name} (error of {key}; reference {_fmt(ref) if ref else 'none'})",
            "",
            *table_head(columns, levels, "machine, note"),
        ]
        for r in group:
            pts = r["trajectory"]
            m, v = r.get("machine", {}), r.get("versions", {})
            where = f"{m.get('cpu', '?')}, {m.get('torch_threads', '?')} thread(s), "
            where += f"torch {v.get('torch', '?')}" + (f"; {r['note']}" if r.get("note") else "")
            times = [first_time_below(pts, key, lv) for lv in levels]
            out.append(
                f"| {label(r)} | {r.get('date', '?')} | {pts[-1]['epoch']} | "
                f"{_fmt(pts[-1]['train_s'], ' ')} | {_fmt(pts[-1]['errors'].get(key))} | "
                + " | ".join(_fmt(t, " s") for t in times)
                + f" | {where} |"
            )
        _plot(os.path.join(out_dir, f"long-{name}.png"), name, key, group, ref)
        out += ["", f"![{name}, long runs](long-{name}.png)", ""]
    return out


def _plot(path: str, name: str, key: str, group: list[dict[str, Any]], ref: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in group:
        pts = [p for p in r["trajectory"] if p["train_s"] > 0 and key in p["errors"]]
        xs, ys = [p["train_s"] for p in pts], [p["errors"][key] for p in pts]
        ax.loglog(xs, ys, "-", lw=1.5, label=short_label(r))
    if ref:
        ax.axhline(ref, color="gray", ls="--", lw=1, label="reference")
    ax.set_xlabel("training seconds")
    ax.set_ylabel(f"relative L2 error of {key}" if name != "cavity" else key)
    ax.set_title(f"{name}: long runs, error vs time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results_json", help="a traced results.json of bench/run_problems.py")
    p.add_argument("tag", help="a short name for the run, e.g. lbfgs-5000")
    p.add_argument("--note", default="", help="how the run ran (load, what ran beside it)")
    p.add_argument("--out", default=os.path.join("bench", "results", "optimizers"))
    args = p.parse_args(argv)
    with open(args.results_json) as fh:
        data = json.load(fh)
    if not data.get("trajectory"):
        p.error(f"{args.results_json} has no trajectory (run with --trace-every)")
    os.makedirs(os.path.join(args.out, "long"), exist_ok=True)
    dest = os.path.join(args.out, "long", f"{data['problem']}-{args.tag}.json")
    with open(dest, "w") as fh:
        json.dump({**data, "note": args.note}, fh, indent=1)
    import optimizers  # bench/optimizers.py: the whole report, this section included

    optimizers.report(args.out)
    print(f"{dest}; report in {os.path.join(args.out, 'README.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
