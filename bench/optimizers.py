"""Error against training time for the primal optimizers (issue 13): lbfgs, ssbfgs, ssbroyden,
gauss_newton on the same points, network initialisation and seed, float64, one thread.

Each run is fluxkern.solve (flux formulation, the problem's defaults otherwise) with a
training-time budget. The errors (bench/fidelity.py's Evaluator: relative L2 per field, and the
reference's matrix 2-norm where it used one) are recorded at log-spaced training times (each
record at least `--ratio` times the previous one's seconds) and at the end; the seconds exclude
the evaluations. A run that fails (non-finite loss, a refused option) is recorded with its error
message. Writes <out>/<problem>.json per problem (machine, versions, options, trajectories),
then <out>/README.md (a table) and <out>/<problem>.png (error vs seconds, log-log) from all the
JSON files present.

Usage: python bench/optimizers.py poisson helmholtz [--budget 240] [--optimizers ...]
       [--out bench/results/optimizers] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import long_runs  # noqa: E402
from fluxkern import problems, solver  # noqa: E402
from fluxkern.training import Callback, EpochRecord, Trainer  # noqa: E402

OPTIMIZERS = ["lbfgs", "ssbfgs", "ssbroyden", "gauss_newton"]
# The field whose error the table and the plot show (all fields are in the JSON).
PRIMARY = {"stokes": "p", "cavity": "u centreline max dev"}
THRESHOLDS = (1e-3, 1e-4, 1e-5)


class LogTrace(Callback):
    """Records the errors when the training seconds first pass each of a geometric series of
    times, ends the run at the budget (training seconds, evaluations excluded), and records
    the end.

    Args:
        problem: The problem (flux formulation).
        budget: Training seconds for the run.
        ratio: Ratio between successive record times (first record after the first epoch).
    """

    def __init__(self, problem: problems.Problem, budget: float, ratio: float) -> None:
        from fidelity import Evaluator  # bench/fidelity.py

        self.evaluator = Evaluator(problem, torch.float64)
        self.budget, self.ratio = budget, ratio
        self.points: list[dict[str, Any]] = []
        self.excluded = 0.0
        self.next_s = 0.0

    def seconds(self, trainer: Trainer) -> float:
        """Training seconds so far (evaluations excluded)."""
        return trainer.elapsed - self.excluded

    def record(self, trainer: Trainer, loss: float) -> None:
        t = time.perf_counter()
        errors = self.evaluator(trainer.model)
        point = {"epoch": trainer.epoch, "train_s": self.seconds(trainer), "loss": loss}
        self.points.append({**point, "errors": errors})
        self.excluded += time.perf_counter() - t

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        s = self.seconds(trainer)
        if s >= self.next_s or s >= self.budget:
            self.record(trainer, record.loss)
            self.next_s = s * self.ratio
        return True if s >= self.budget else None


def run_one(name: str, optimizer: str, budget: float, ratio: float, seed: int) -> dict[str, Any]:
    """One optimizer on one problem: its trajectory, or the error that ended it."""
    prob = problems.get(name)
    trace = LogTrace(prob, budget, ratio)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"optimizer": optimizer, "budget_s": budget}
    try:
        res = solver.solve(
            prob,
            epochs=10**7,
            optimizer=optimizer,
            dtype="float64",
            seed=seed,
            progress=False,
            plots=False,
            callbacks=[trace],
        )
        out.update(epochs=res["epochs"], final_loss=res["final_loss"])
    except (solver.NonFiniteLossError, ValueError, RuntimeError) as exc:
        out["failed"] = f"{type(exc).__name__}: {exc}"
    out["wall_s"] = time.perf_counter() - t0
    out["eval_s"] = trace.excluded
    out["trajectory"] = trace.points
    return out


def first_time_below(points: list[dict[str, Any]], key: str, level: float) -> float | None:
    """Training seconds of the first record with errors[key] <= level, or None."""
    for p in points:
        if p["errors"].get(key, math.inf) <= level:
            return p["train_s"]
    return None


def primary_key(name: str, points: list[dict[str, Any]]) -> str:
    if name in PRIMARY:
        return PRIMARY[name]
    keys = list(points[0]["errors"]) if points else ["u"]
    return "u" if "u" in keys else keys[0]


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    return f"{x:.1f}{unit}" if unit else f"{x:.2e}"


def table_head(columns: list[str], levels: list[float], last: str) -> list[str]:
    """A markdown table's header and rule: the columns, t(level) per level, then `last`."""
    names = [*columns, *(f"t({_fmt(lv)})" for lv in levels), last]
    return ["| " + " | ".join(names) + " |", "|---" * len(names) + "|"]


def report(out_dir: str) -> str:
    """Writes README.md and one PNG per problem from the JSON files in out_dir; returns the
    markdown."""
    files = sorted(f for f in os.listdir(out_dir) if f.endswith(".json"))
    lines = [
        "# Optimizers: error against training seconds (issue 13)",
        "",
        "Made by `bench/optimizers.py` (module doc: how). Training seconds exclude the error",
        "evaluations. t(x): first recorded training time with the error <= x (records are",
        "log-spaced in time, so these are upper bounds within the record spacing). '-': not",
        "reached within the budget.",
        "",
    ]
    chains, continued = [], []
    for f in files:
        with open(os.path.join(out_dir, f)) as fh:
            data = json.load(fh)
        if "chain" in data:  # bench/optimizer_chain.py's runs: a section of their own below
            chains.append(data)
            continue
        if "run_epochs" in data:  # bench/lbfgs_continue.py's runs: also their own section
            continued.append(data)
            continue
        name = data["problem"]
        runs = data["runs"]
        key = primary_key(name, next((r["trajectory"] for r in runs if r["trajectory"]), []))
        ref = data.get("reference_errors", {}).get(key)
        levels = ([ref] if ref else []) + list(THRESHOLDS)
        m = data["machine"]
        lines += [
            f"## {name} (error of {key}; reference {_fmt(ref) if ref else 'none'})",
            "",
            f"{m.get('cpu', '?')}, {data['threads']} thread(s), budget {data['budget_s']:g} s per "
            f"optimizer, seed {data['seed']}, torch {data['versions'].get('torch', '?')}; "
            f"run {data['date']}." + (f" {data['note']}" if data.get("note") else ""),
            "",
            *table_head(
                ["optimizer", "epochs", "train s", "final error", "best error"], levels, "note"
            ),
        ]
        for r in runs:
            pts = r["trajectory"]
            errs = [p["errors"].get(key, math.nan) for p in pts]
            final = errs[-1] if errs else None
            best = min(errs) if errs else None
            secs = pts[-1]["train_s"] if pts else None
            times = [first_time_below(pts, key, lv) for lv in levels]
            note = r.get("failed", "")
            lines.append(
                f"| {r['optimizer']} | {r.get('epochs', pts[-1]['epoch'] if pts else '-')} | "
                f"{_fmt(secs, ' ')} | {_fmt(final)} | {_fmt(best)} | "
                + " | ".join(_fmt(t, " s") for t in times)
                + f" | {note} |"
            )
        lines.append("")
        _plot(os.path.join(out_dir, f"{name}.png"), name, key, runs, ref)
        lines += [f"![{name}]({name}.png)", ""]
    lines += long_runs.section(out_dir)
    lines += _chain_lines(chains)
    lines += _continue_lines(continued)
    text = "\n".join(lines)
    with open(os.path.join(out_dir, "README.md"), "w") as fh:
        fh.write(text)
    return text


def _chain_lines(chains: list[dict[str, Any]]) -> list[str]:
    """Markdown for bench/optimizer_chain.py's runs: per optimizer phase, the errors at its end
    and the first training time at or below the reference's error."""
    if not chains:
        return []
    out = [
        "## One optimizer, then another (bench/optimizer_chain.py)",
        "",
        "| problem | chain (optimizer, s) | phase | epochs | train s | error at the phase's end "
        "| t(reference) | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for data in chains:
        name, pts = data["problem"], data["trajectory"]
        key = primary_key(name, pts)
        ref = problems.get(name).reference.get("errors", {}).get(key)
        chain = ", ".join(f"{o} {t:g}" for o, t in data["chain"])
        t_ref = first_time_below(pts, key, ref) if ref else None
        for phase in dict.fromkeys(p["optimizer"] for p in pts):
            last = [p for p in pts if p["optimizer"] == phase][-1]
            out.append(
                f"| {name} | {chain} | {phase} | {last['epoch']} | {_fmt(last['train_s'], ' ')} "
                f"| {key} {_fmt(last['errors'].get(key))} | {_fmt(t_ref, ' ')} "
                f"| {data.get('note') or ''} |"
            )
    return [*out, ""]


def _continue_lines(runs: list[dict[str, Any]]) -> list[str]:
    """Markdown for bench/lbfgs_continue.py's runs: a finished run continued with another
    optimizer; the errors at the start, at the first record at or below 1e-4 in the primary
    field, and at the end."""
    if not runs:
        return []
    out = [
        "## A finished run continued (bench/lbfgs_continue.py)",
        "",
        "| problem | from | optimizer (options) | record | epoch | train s | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for data in runs:
        name, pts = data["problem"], data["trajectory"]
        key = primary_key(name, pts)
        opts = ", ".join(
            f"{k} {data[k]:g}"
            for k in ("tolerance_grad", "tolerance_change", "curvature_eps")
            if data.get(k) is not None
        )
        head = f"| {name} | {data['run']}, {data['run_epochs']} epochs | "
        head += f"{data.get('optimizer', 'lbfgs')} ({opts}) | "
        hit = next((p for p in pts if p["errors"].get(key, math.inf) <= 1e-4), None)
        marks = [("start", pts[0]), (f"first {key} <= 1e-4", hit), ("last", pts[-1])]
        for label, p in marks:
            if p is None:
                out.append(head + f"{label} | - | - | not reached |")
                continue
            errs = ", ".join(f"{k} {_fmt(v)}" for k, v in p["errors"].items() if "matrix" not in k)
            out.append(head + f"{label} | {p['epoch']} | {_fmt(p['train_s'], ' ')} | {errs} |")
    out.append("")
    for data in runs:
        m = data["machine"]
        out.append(
            f"- {data['problem']} with {data.get('optimizer', 'lbfgs')}: {m.get('cpu', '?')}, "
            f"{m.get('torch_threads', '?')} thread(s), torch {m.get('torch', '?')}, "
            f"{m.get('date', '?')}" + (f". {data['note']}" if data.get("note") else "")
        )
    return [*out, ""]


def _plot(path: str, name: str, key: str, runs: list[dict[str, Any]], ref: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in runs:
        pts = [p for p in r["trajectory"] if p["train_s"] > 0]
        if pts:
            ax.loglog(
                [p["train_s"] for p in pts],
                [p["errors"][key] for p in pts],
                "o-",
                ms=3,
                label=r["optimizer"],
            )
    if ref:
        ax.axhline(ref, color="gray", ls="--", lw=1, label="reference")
    ax.set_xlabel("training seconds")
    ax.set_ylabel(f"relative L2 error of {key}")
    ax.set_title(f"{name}: error vs time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="problems")
    p.add_argument("--optimizers", nargs="+", default=OPTIMIZERS, choices=OPTIMIZERS)
    p.add_argument("--budget", type=float, default=240.0, help="training seconds per run")
    p.add_argument("--ratio", type=float, default=1.25, help="ratio of successive record times")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=os.path.join("bench", "results", "optimizers"))
    p.add_argument("--report-only", action="store_true", help="only remake README.md and plots")
    p.add_argument("--note", default="", help="a note printed under each problem's heading")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    for name in [] if args.report_only else args.names:
        prob = problems.get(name)
        data = {
            "problem": name,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": solver.machine(),
            "versions": solver.versions(),
            "threads": torch.get_num_threads(),
            "budget_s": args.budget,
            "seed": args.seed,
            "reference_errors": prob.reference.get("errors", {}),
            "note": args.note,
            "runs": [],
        }
        path = os.path.join(args.out, f"{name}.json")
        for opt in args.optimizers:
            print(f"== {name} {opt} ({args.budget:g} s)", flush=True)
            run = run_one(name, opt, args.budget, args.ratio, args.seed)
            data["runs"].append(run)
            last = run["trajectory"][-1] if run["trajectory"] else {}
            print(f"   {run.get('failed', '')} {last}", flush=True)
            with open(path + ".tmp", "w") as fh:
                json.dump(data, fh, indent=1)
            os.replace(path + ".tmp", path)
    print(report(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
