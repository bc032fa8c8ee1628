"""Other seeds of the committed results: do they reach the reference error too, and when?

Every committed result (results/<problem>/flux/results.json) is one run with seed 0. This reruns
a problem's committed setup (optimizer, its options, the optimizer switch, the problem
overrides, all read from that results.json) with other seeds through bench/run_problems.py,
one thread, errors traced every N epochs, and reports per seed the first traced epoch and
training time at which the reference's errors are reached (cavity: both centreline deviations
at or below 0.02), as bench/results_table.py does for the committed run. Of each run only its
results.json (with the error trajectory) is kept.

Usage:
    python bench/seed_spread.py run PROBLEM [PROBLEM ...] --seeds 0 1 2 --stop-after SECONDS
    python bench/seed_spread.py report    # writes bench/results/seeds/README.md
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from results_table import first_reached, settings, targets  # noqa: E402

OUT = os.path.join(HERE, "results", "seeds")
RESULTS = "results"
MANY_EPOCHS = 1_000_000  # the runs end by --stop-after
COLUMNS = (
    "problem",
    "seed",
    "reference reached",
    "final errors",
    "best traced",
    "epochs",
    "s",
    "machine",
)


def committed(problem: str, results: str) -> dict[str, Any]:
    """The committed flux result of a problem."""
    with open(os.path.join(results, problem, "flux", "results.json")) as fh:
        return json.load(fh)


def command(
    problem: str,
    seed: int,
    stop_after: float,
    trace_every: int,
    out: str,
    results: str,
    extra: list[str] | None = None,
) -> list[str]:
    """The bench/run_problems.py command that reruns the committed setup with another seed
    (extra: more run_problems.py options, e.g. --resample-every N)."""
    r = committed(problem, results)
    argv = [sys.executable, os.path.join(HERE, "run_problems.py"), problem]
    argv += ["--formulations", "flux", "--threads", "1", "--seed", str(seed)]
    argv += ["--epochs", str(MANY_EPOCHS), "--stop-after", str(stop_after)]
    argv += ["--trace-every", str(trace_every), "--out", out, "--optimizer", r["optimizer"]]
    if r.get("optimizer_options"):
        argv += ["--optimizer-options", json.dumps(r["optimizer_options"])]
    if r.get("then_optimizer"):
        argv += ["--then-optimizer", r["then_optimizer"]]
        argv += ["--switch-epoch", str(r["switched_at_epoch"])]
        argv += ["--then-optimizer-options", json.dumps(r.get("then_optimizer_options", {}))]
    for key, val in (r.get("problem_overrides") or {}).items():
        argv += ["--problem-default", f"{key}={json.dumps(val)}"]
    return argv + list(extra or [])


def run(
    problems: list[str],
    seeds: list[int],
    stop_after: float,
    trace_every: int,
    out: str,
    results: str,
    extra: list[str] | None = None,
) -> int:
    """Runs each problem's committed setup with each seed into out/seedS/; 0 or an exit code."""
    for problem in problems:
        for seed in seeds:
            where = os.path.join(out, f"seed{seed}")
            argv = command(problem, seed, stop_after, trace_every, where, results, extra)
            print(" ".join(argv), flush=True)
            code = subprocess.call(argv)
            if code:
                print(f"{problem} seed {seed}: exit code {code}", flush=True)
                return code
            folder = os.path.join(where, problem, "flux")
            for name in os.listdir(folder):  # results.json holds the trajectory; plots and
                if name != "results.json":  # models of every seed would bloat the repository
                    os.remove(os.path.join(folder, name))
    return 0


def _errors(errs: dict[str, float], keys: list[str]) -> str:
    return ", ".join(f"{k.split()[0]} {errs[k]:.1e}" for k in keys if k in errs)


def _seed_runs(out: str, problem: str = "*") -> list[dict[str, Any]]:
    """The results.json of every seed run under out (of one problem, or all)."""
    paths = sorted(glob.glob(os.path.join(out, "seed*", problem, "flux", "results.json")))
    runs = []
    for path in paths:
        with open(path) as fh:
            runs.append(json.load(fh))
    return runs


def rows(ref: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    """Table rows: the committed run ref, then the seed runs."""
    problem = ref["problem"]
    goal = targets(problem, ref.get("reference", {}))
    keys = list(goal) or list(ref["errors"])
    table = []
    for r in [ref, *runs]:
        hit = first_reached(r.get("trajectory", []), goal)
        reached = f"epoch {hit['epoch']}, {hit['train_s']:.0f} s" if hit else "**not reached**"
        reached = reached if goal else "n/a (no reference error)"
        traj = r.get("trajectory") or [{"errors": r["errors"]}]
        final = traj[-1]["errors"] if goal else r["errors"]
        best = {k: min(p["errors"][k] for p in traj if k in p["errors"]) for k in final}
        machine = r.get("machine", {}).get("cpu", "?") + (", results/ (committed)" * (r is ref))
        table.append(
            f"| {problem} | {r['seed']} | {reached} | {_errors(final, keys)} | "
            f"{_errors(best, keys)} | {r['epochs']} | {r['wall_time_s']:.0f} | {machine} |"
        )
    return table


def _redraw(run: dict[str, Any]) -> tuple[int, bool] | None:
    """(epochs between draws, optimizer state kept) of a run that redrew its points, else None:
    solve's resample_every, or the "resample" entry bench/run_problems.py wrote before solve had
    that option (the runs in bench/results/seeds_resample)."""
    if run.get("resample_every"):
        return run["resample_every"], bool(run.get("resample_keep_optimizer"))
    old = run.get("resample")
    return (old["every"], not old["reset_optimizer"]) if old else None


def report(problems: list[str], out: str, results: str) -> str:
    """The README text: the table of every problem's runs, the settings and the machines."""
    lines = [
        "# Other seeds of the committed results",
        "",
        "Written by `python bench/seed_spread.py report` from the runs of `python "
        "bench/seed_spread.py run PROBLEM --seeds ...` (one thread each, at most two side by "
        "side; times are training seconds without the error tracing, so contended runs are "
        "slower than alone). Each run repeats the committed setup of results/PROBLEM/flux: "
        "the same optimizer, options, switch and problem overrides, another seed (the points "
        "and the initial network).",
        "",
        "Reached: the first traced epoch at which every reference error is met (cavity: both "
        "centreline deviations from Ghia et al. <= 0.02). Final: at the end of the run; best: the "
        "smallest traced, per field.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    refs = {problem: committed(problem, results) for problem in problems}
    machines, redraws = set(), set()
    for problem, ref in refs.items():
        runs = _seed_runs(out, problem)
        lines += rows(ref, runs)
        for r in runs:
            v, m = r.get("versions", {}), r.get("machine", {})
            machines.add(
                f"{m.get('cpu')}, {m.get('cores')} cores, Python {v.get('python')}, torch "
                f"{v.get('torch')}, fluxkern {v.get('fluxkern')}, {r.get('date')}"
            )
            if redraw := _redraw(r):
                every, kept = redraw
                redraws.add(f"every {every} epochs, optimizer state {'kept' if kept else 'reset'}")
    if redraws:
        lines += [
            "",
            "These seed runs (not the committed ones) redraw their points "
            f"({'; '.join(sorted(redraws))}; fluxkern.training.Resample, pointwise multipliers "
            "reset).",
        ]
    lines += ["", "Settings (from the committed results.json; lbfgs unless named):"]
    lines += [f"- {problem}{settings(ref)}" for problem, ref in refs.items()]
    lines += ["", "Machines of the seed runs:", *[f"- {m}" for m in sorted(machines)], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=OUT, help="the seed runs' folder (default %(default)s)")
    p.add_argument("--results", default=RESULTS, help="the committed results (default results)")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("problems", nargs="+")
    r.add_argument("--seeds", type=int, nargs="+", required=True)
    r.add_argument("--stop-after", type=float, required=True, help="training seconds per run")
    r.add_argument("--trace-every", type=int, default=50)
    r.add_argument("--resample-every", type=int, default=None, help="run_problems.py's option")
    r.add_argument("--resample-keep-optimizer", action="store_true")
    rep = sub.add_parser("report")
    rep.add_argument("problems", nargs="*")
    args = p.parse_args(argv)
    if args.cmd == "run":
        extra = ["--resample-every", str(args.resample_every)] if args.resample_every else []
        extra += ["--resample-keep-optimizer"] if args.resample_keep_optimizer else []
        return run(
            args.problems,
            args.seeds,
            args.stop_after,
            args.trace_every,
            args.out,
            args.results,
            extra,
        )
    found = _seed_runs(args.out)
    if not found:
        p.error(f"no seed runs under {args.out}")
    names = args.problems or sorted({r["problem"] for r in found})
    text = report(names, args.out, args.results)
    with open(os.path.join(args.out, "README.md"), "w") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
