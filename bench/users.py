"""The users workload: PDEs users bring (examples/*.py), fluxkern against DeepXDE at equal wall
time, one thread each, relative L2 error at 60 s, 300 s and the end of the budget.

fluxkern: `fluxkern.solve(example_file)` with the problem file's and the library's defaults
(flux form, augmented Lagrangian, the automatic optimizer, float64); the only options are the
ones that make time the limit, as a user's `fluxkern solve FILE --time-limit BUDGET` does:
time_limit=budget (so a run with redraws trains its last tenth on its final phase's fixed set,
:class:`fluxkern.training.FinalPhase`), epochs=10**9, and a callback that ends the run once the
budget on the bench's clock (set-up included, error checks excluded) is spent.
DeepXDE: its documented recipe (bench/users_deepxde.py), in its own environment (.venv-bench,
or FLUXKERN_DEEPXDE_PYTHON). Each side runs in its own interpreter with one thread
(torch.set_num_threads(1), OMP/MKL/OpenBLAS threads 1); by default both run at once, one per
core of a 2-core machine (--sequential runs them one after the other).

Clock: from the start of set-up (the problem's points and blocks, the network; DeepXDE's data
and compile) to the end of each optimizer step (fluxkern: an epoch; DeepXDE: an Adam iteration or
20 L-BFGS iterations), minus the time spent in the error checks. A check runs every --interval
seconds and at the last step before each mark (60 s, 300 s, the budget), on the example's
evaluation grid against its exact (or reference) solution; "error" is the largest relative L2
over the example's error fields.

    python bench/users.py [--budget 60] [--problems NAME ...] [--sequential] [--quick]
    python -m bench --workloads users [--users-budget 60] [--users-problems NAME ...] [--quick]

Results: bench/results/users-DATE.json (every run of the day, by budget) and .md (tables).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

import users_common as uc

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXAMPLES = os.path.join(ROOT, "examples")
PROBLEMS = (
    "allen_cahn",
    "kdv",
    "wave",
    "kovasznay",
    "taylor_green",
    "heat2d",
    "klein_gordon",
    "poisson3d",
    "viscous_front",
)
QUICK_PROBLEMS = ("wave", "poisson3d")
QUICK_BUDGET = 5.0

__all__ = [
    "PROBLEMS",
    "example_path",
    "fluxkern_child",
    "machine",
    "main",
    "markdown",
    "run_problem",
    "summarise",
    "verdict",
    "write_eval",
]


def example_path(name: str) -> str:
    return os.path.join(EXAMPLES, name + ".py")


def deepxde_python() -> str:
    return os.environ.get(
        "FLUXKERN_DEEPXDE_PYTHON", os.path.join(ROOT, ".venv-bench", "bin", "python")
    )


# --------------------------------------------------------------------------- evaluation file
def write_eval(name: str, path: str) -> dict[str, Any]:
    """The example's evaluation grid and exact fields (float64) into `path` (.npz), with the
    net size; both contenders read it, so they are scored on the same points and values."""
    import torch

    import fluxkern as fk

    prob = fk.problems.resolve(example_path(name))
    grid = prob.eval_grid(torch.float64, torch.device("cpu"))
    ex = prob.exact(grid.points)
    fields = list(prob.error_fields)
    meta = {
        "name": name,
        "error_fields": fields,
        "width": prob.width,
        "depth": prob.depth,
        "d": len(prob.input_names),
        "outputs": list(prob.output_names),
        "grid_shape": list(grid.shape),
    }
    arrays = {"exact_" + f: ex[f].double().numpy() for f in fields}
    np.savez(path, points=grid.points.numpy(), meta=json.dumps(meta), **arrays)
    return meta


# results.json's verdicts of the run's own checks, by key: did it warn?
_VERDICTS = {"unseen": "untrustworthy", "conditioning": "flagged", "stall": "stalled"}


# --------------------------------------------------------------------------- fluxkern side
def fluxkern_child(name: str, eval_path: str, budget: float, interval: float) -> dict[str, Any]:
    """fluxkern.solve(example) at a wall-time budget, with the error trace."""
    import torch

    torch.set_num_threads(1)
    import fluxkern as fk
    from fluxkern import solver

    ev = uc.load_eval(eval_path)
    prob = fk.problems.resolve(example_path(name))
    pts = torch.as_tensor(ev["points"], dtype=torch.float64)
    opts = solver.effective_options(prob)
    state: dict[str, Any] = {}

    def evaluate() -> dict[str, float]:
        fields = solver.predict(prob, state["model"], "flux", pts)
        return {f: uc.relative_l2(fields[f].numpy(), ev["exact"][f]) for f in ev["error_fields"]}

    trace = uc.Trace(budget, interval, evaluate)  # the clock starts here: set-up counts

    def callback(epoch: int, model: torch.nn.Module) -> bool:
        state["model"] = model
        return trace.step(epoch, opts.optimizer)

    res = solver.solve(
        prob, callback=callback, epochs=10**9, time_limit=budget, progress=False, plots=False
    )
    try:  # after the clock: diagnostics only
        between = between_points(prob, state["model"])
    except Exception as exc:  # noqa: BLE001 -- a diagnostic must not lose the run
        between = {"error": f"{type(exc).__name__}: {exc}"}
    return {
        **trace.as_dict(),
        "between_points": between,
        "contender": "fluxkern",
        "epochs": res["epochs"],
        "optimizer_class": res.get("optimizer_class"),  # what "auto" resolved to
        "final_loss": res.get("final_loss"),
        "resample_auto_from": res.get("resample_auto_from"),  # automatic redraws began
        "resample_final_from": res.get("resample_final_from"),  # the final phase began
        "warnings": {k: bool((res.get(k) or {}).get(v)) for k, v in _VERDICTS.items()},
        "defaults": {
            "optimizer": opts.optimizer,
            "dtype": opts.dtype,
            "dual": opts.dual,
            "resample_every": opts.resample_every,
            "formulation": opts.formulation,
        },
        "net": [len(prob.input_names)] + [prob.width] * prob.depth + [len(prob.output_names)],
        "versions": {
            "fluxkern": fk.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "torch_threads": torch.get_num_threads(),
        "wall_s": round(time.perf_counter() - trace.clock.start, 2),
    }


def between_points(prob: Any, model: Any, fresh_seed: int = 12345) -> dict[str, Any]:
    """RMS of every block's residual at the run's own points (seed 0, what solve trained on)
    and at a fresh draw: a block much larger between the points than at them is over-fitted
    (e.g. a flux output that leaves the derivative it stands for at a front)."""
    import torch

    import fluxkern as fk

    out: dict[str, dict[str, float]] = {}
    for label, seed in (("train", 0), ("fresh", fresh_seed)):
        for block in prob.flux_terms(seed, torch.float64, torch.device("cpu")):
            x = block.points
            with torch.no_grad():
                y, jac = fk.jet(model, x)
            e = torch.stack([ex.evaluate(block.data, y, jac, x) for ex in block.exprs], 1)
            r = e[: block.n] - e[block.n :] if block.paired else e
            out.setdefault(block.name, {})[label] = float(r.pow(2).mean().sqrt())
    for row in out.values():
        row["fresh/train"] = row["fresh"] / row["train"] if row["train"] > 0 else float("inf")
    return out


# --------------------------------------------------------------------------- orchestration
def _launch(cmd: list[str], log: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env["DDE_BACKEND"] = "pytorch"
    env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
    fh = open(log, "w")  # noqa: SIM115 -- closed by _wait
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    proc._log = fh  # type: ignore[attr-defined]
    return proc


def _wait(proc: subprocess.Popen, timeout: float, out: str, log: str) -> dict[str, Any]:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc._log.close()  # type: ignore[attr-defined]
    if os.path.exists(out):
        with open(out) as fh:
            return json.load(fh)
    with open(log) as fh:
        tail = fh.read()[-600:]
    return {"error": f"no result (exit code {proc.returncode}); log tail: {tail}"}


def run_problem(
    name: str, budget: float, interval: float, parallel: bool = True, work: str | None = None
) -> dict[str, Any]:
    """Both contenders on one problem; returns their traces and the load averages."""
    work = work or tempfile.mkdtemp(prefix=f"users-{name}-")
    ev = os.path.join(work, "eval.npz")
    meta = write_eval(name, ev)
    outs = {k: os.path.join(work, k + ".json") for k in ("fluxkern", "deepxde")}
    logs = {k: os.path.join(work, k + ".log") for k in outs}
    cmds = {
        "fluxkern": [
            sys.executable,
            os.path.join(HERE, "users.py"),
            "--child",
            name,
            ev,
            outs["fluxkern"],
            "--budget",
            str(budget),
            "--interval",
            str(interval),
        ],
        "deepxde": [
            deepxde_python(),
            os.path.join(HERE, "users_deepxde.py"),
            name,
            ev,
            outs["deepxde"],
            "--budget",
            str(budget),
            "--interval",
            str(interval),
        ],
    }
    timeout = 2 * budget + 300
    load_before = round(os.getloadavg()[0], 2)
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    if not os.path.exists(cmds["deepxde"][0]):
        results["deepxde"] = {"error": f"DeepXDE environment not found: {cmds['deepxde'][0]}"}
        del cmds["deepxde"]
    if parallel:
        procs = {k: _launch(c, logs[k]) for k, c in cmds.items()}
        for k, proc in procs.items():
            results[k] = _wait(proc, timeout, outs[k], logs[k])
    else:
        for k, c in cmds.items():
            results[k] = _wait(_launch(c, logs[k]), timeout, outs[k], logs[k])
    return {
        "problem": name,
        "meta": meta,
        "budget_s": budget,
        "mode": "parallel (one core each)" if parallel else "sequential",
        "load_average_before": load_before,
        "load_average_after": round(os.getloadavg()[0], 2),
        "wall_s": round(time.perf_counter() - t0, 1),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "fluxkern": results["fluxkern"],
        "deepxde": results["deepxde"],
    }


# --------------------------------------------------------------------------- summary
def summarise(run: dict[str, Any]) -> dict[str, Any]:
    """Per contender: the error at 60 s, at 300 s (when the budget reaches it) and at the end."""
    out: dict[str, Any] = {}
    for side in ("fluxkern", "deepxde"):
        tr = run[side]
        if "error" in tr or not tr.get("times_s"):
            out[side] = {"failed": tr.get("error", "no checks")}
            continue
        row: dict[str, Any] = {}
        for mark in uc.MARKS:
            if mark <= run["budget_s"] + 1e-9:
                row[f"{mark:g}s"] = uc.error_at(tr, mark)
        row["end"] = uc.error_at(tr, None)
        out[side] = row
    return out


def verdict(summary: dict[str, Any]) -> dict[str, Any]:
    """The issue's bar: fluxkern's error at 300 s at most a tenth of DeepXDE's, and not worse
    at 60 s. Marks the budget does not reach are None."""
    f, d = summary.get("fluxkern", {}), summary.get("deepxde", {})
    if "failed" in f or "failed" in d:
        return {"at_60s": None, "at_300s": None, "ratio_60s": None, "ratio_300s": None}
    res: dict[str, Any] = {}
    for mark, factor in (("60s", 1.0), ("300s", 0.1)):
        ef, ed = f.get(mark), d.get(mark)
        if not ef or not ed:
            res[f"at_{mark}"], res[f"ratio_{mark}"] = None, None
            continue
        ratio = ef["error"] / ed["error"] if ed["error"] > 0 else float("inf")
        res[f"ratio_{mark}"] = ratio
        res[f"at_{mark}"] = bool(ratio <= factor)
    return res


def _fmt(e: dict[str, Any] | None) -> str:
    if not e:
        return "-"
    return f"{e['error']:.2e} ({e['time_s']:.0f} s)"


def _run_order(item: tuple[str, Any]) -> tuple[float, str]:
    """Runs by budget ("60s", "300s", "300s-..." for a rerun), then by name."""
    key = item[0]
    digits = "".join(c for c in key.split("s")[0] if c.isdigit() or c == ".")
    return (float(digits) if digits else math.inf, key)


def _cell(side: dict[str, Any], mark: str) -> str:
    return side["failed"][:60] if "failed" in side else _fmt(side.get(mark))


def _bar(v: dict[str, Any], key: str) -> str:
    ok, ratio = v.get(f"at_{key}"), v.get(f"ratio_{key}")
    return "-" if ok is None else f"{'met' if ok else 'missed'} (x{ratio:.2g})"


def markdown(payload: dict[str, Any]) -> str:
    """The tables of every run in the payload."""
    m = payload["machine"]
    lines = [
        f"# users workload: PDEs users bring, fluxkern vs DeepXDE at equal wall time "
        f"({payload['date']})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}; fluxkern "
        f"{m['fluxkern']} (torch {m['torch']}) at commit {m['commit'][:10]} at the start of the "
        "latest run"
        + (f" with {len(m['modified'])} modified files in the shared tree" if m["modified"] else "")
        + f"; DeepXDE {m.get('deepxde') or '?'} (torch {m.get('deepxde_torch') or '?'}).",
        "",
        "Error: the largest relative L2 over the example's error fields on its evaluation grid, "
        "at the last check at or before the time (the time in brackets; error checks excluded "
        "from the clock). Bar (issue 27): fluxkern at 300 s <= DeepXDE at 300 s / 10, and "
        "fluxkern at 60 s <= DeepXDE at 60 s.",
    ]
    for key, run in sorted(payload["runs"].items(), key=_run_order):
        lines += ["", f"## budget {key}", "", f"Command: `{run['command']}`", ""]
        head = (
            "| problem | fluxkern 60 s | DeepXDE 60 s | fluxkern 300 s | DeepXDE 300 s | "
            "fluxkern end | DeepXDE end | fluxkern epochs | DeepXDE Adam + L-BFGS its | "
            "bar 60 s | bar 300 s | load before / after |"
        )
        lines += [head, "|" + "---|" * 12]
        for name, r in run["problems"].items():
            s, v = r["summary"], r["verdict"]
            f, d = s["fluxkern"], s["deepxde"]

            dx = r["deepxde"]
            its = f"{dx.get('adam_iterations', '-')} + {dx.get('lbfgs_iterations', '-')}"
            lines.append(
                f"| {name} | {_cell(f, '60s')} | {_cell(d, '60s')} | {_cell(f, '300s')} | "
                f"{_cell(d, '300s')} | {_cell(f, 'end')} | {_cell(d, 'end')} | "
                f"{r['fluxkern'].get('epochs', '-')} | {its} | "
                f"{_bar(v, '60s')} | {_bar(v, '300s')} | "
                f"{r['load_average_before']} / {r['load_average_after']} |"
            )
        fields = [
            f"{n}: "
            + ", ".join(
                f"{k} {v:.2e}"
                for k, v in (r["summary"]["fluxkern"].get("end") or {}).get("errors", {}).items()
            )
            for n, r in run["problems"].items()
            if len(r["meta"]["error_fields"]) > 1
        ]
        if fields:
            lines += ["", "fluxkern's per-field errors at the end: " + "; ".join(fields)]
        fields = [
            f"{n}: "
            + ", ".join(
                f"{k} {v:.2e}"
                for k, v in (r["summary"]["deepxde"].get("end") or {}).get("errors", {}).items()
            )
            for n, r in run["problems"].items()
            if len(r["meta"]["error_fields"]) > 1 and "failed" not in r["summary"]["deepxde"]
        ]
        if fields:
            lines += ["", "DeepXDE's per-field errors at the end: " + "; ".join(fields)]
        lines += _diagnostics(run)
        if run.get("note"):
            lines += ["", run["note"]]
    lines += _combined(payload)
    if payload.get("note"):
        lines += ["", payload["note"]]
    return "\n".join(lines) + "\n"


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _diagnostics(run: dict[str, Any]) -> list[str]:
    """Where the time went and what limited fluxkern: CPU seconds each side got (of the wall
    budget, on a shared machine), fluxkern's epoch rate, its error at half the budget against
    the end (a stall shows as no gain), and the worst block residual between the points."""
    rows = []
    for name, r in run["problems"].items():
        f, d = r["fluxkern"], r["deepxde"]
        if "times_s" not in f:
            continue
        half = uc.error_at(f, r["budget_s"] / 2)
        end = uc.error_at(f, None)
        cpu = [(x.get("cpu_s") or [None])[-1] for x in (f, d)]
        bp = f.get("between_points") or {}
        worst = max(
            ((k, v) for k, v in bp.items() if isinstance(v, dict)),
            key=lambda kv: kv[1]["fresh/train"],
            default=None,
        )
        opt = f.get("optimizer_class") or f.get("optimizer_resolved") or "-"
        rows.append(
            f"| {name} | {opt} | {f.get('epochs', '-')} | "
            f"{end['time_s'] / max(f.get('epochs') or 1, 1):.2f} | "
            + " / ".join("-" if c is None else f"{c:.0f}" for c in cpu)
            + f" | {half['error'] if half else math.nan:.2e} -> {end['error']:.2e} | "
            + (
                f"{worst[0]}: {worst[1]['train']:.1e} at the points, {worst[1]['fresh']:.1e} "
                f"between (x{worst[1]['fresh/train']:.2g})"
                if worst
                else "-"
            )
            + f" | {_or_dash(f.get('resample_auto_from'))} / "
            + _or_dash(f.get("resample_final_from"))
            + f" | {', '.join(k for k, v in (f.get('warnings') or {}).items() if v) or '-'} |"
        )
    if not rows:
        return []
    return [
        "",
        "fluxkern diagnostics (CPU s: what each process got of the wall budget, checks left out; "
        "between the points: RMS of fluxkern's worst block at its training points and at a "
        "fresh draw, after the run; redraws / final phase: the epochs they began at, "
        "automatic redraws' included; warned: the run's own checks that warned):",
        "",
        "| problem | optimizer | epochs | wall s per epoch | CPU s fluxkern / DeepXDE | error at "
        "half the budget -> end | worst block between the points | redraws / final phase from "
        "| warned |",
        "|" + "---|" * 9,
        *rows,
    ]


def _combined(payload: dict[str, Any]) -> list[str]:
    """The bar per problem from the two horizons: 60 s from the 60 s budget run (each side's
    whole recipe within 60 s) and 300 s from the 300 s budget run."""
    runs = payload["runs"]
    if "60s" not in runs or "300s" not in runs:
        return []
    lines = [
        "",
        "## the bar per problem (60 s from the 60 s run, 300 s from the 300 s run)",
        "",
        "| problem | fluxkern 60 s | DeepXDE 60 s | not worse at 60 s | fluxkern 300 s | "
        "DeepXDE 300 s | <= 1/10 at 300 s | bar |",
        "|" + "---|" * 8,
    ]
    for name, r300 in runs["300s"]["problems"].items():
        r60 = runs["60s"]["problems"].get(name)
        if r60 is None:
            continue
        s60, s300 = r60["summary"], r300["summary"]
        v = verdict({"fluxkern": {"60s": s60["fluxkern"].get("60s"),
                                  "300s": s300["fluxkern"].get("300s")},
                     "deepxde": {"60s": s60["deepxde"].get("60s"),
                                 "300s": s300["deepxde"].get("300s")}})  # fmt: skip
        ok = v["at_60s"] and v["at_300s"]
        lines.append(
            f"| {name} | {_cell(s60['fluxkern'], '60s')} | {_cell(s60['deepxde'], '60s')} | "
            f"{_bar(v, '60s')} | {_cell(s300['fluxkern'], '300s')} | "
            f"{_cell(s300['deepxde'], '300s')} | {_bar(v, '300s')} | "
            f"{'met' if ok else 'missed' if ok is not None else '-'} |"
        )
    return lines


def _git(*args: str) -> str:
    try:
        p = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, timeout=20)
        return p.stdout.rstrip() if p.returncode == 0 else ""  # porcelain lines start with " "
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict[str, Any]:
    """CPU model, cores, versions, the commit and the modified files of the tree."""
    import torch

    import fluxkern as fk
    from fluxkern.solver import machine as fluxkern_machine

    host = fluxkern_machine()
    info: dict[str, Any] = {
        "cpu": host["cpu"],
        "cores": host["cores"],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "fluxkern": fk.__version__,
        "backends": fk.backends(),
        "commit": _git("rev-parse", "HEAD").strip() or "unknown",
        "modified": [ln[3:] for ln in _git("status", "--porcelain", "-uno").splitlines()],
    }
    dx = deepxde_python()
    if os.path.exists(dx):
        try:
            p = subprocess.run(
                [dx, "-c", "import deepxde, torch; print(deepxde.__version__, torch.__version__)"],
                capture_output=True,
                text=True,
                timeout=120,
                env=dict(os.environ, DDE_BACKEND="pytorch"),
            )
            info["deepxde"], info["deepxde_torch"] = p.stdout.split()[-2:]
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    return info


def main(argv: list[str] | None = None, summary: bool = False) -> Any:
    """The command line; returns the exit code, or with summary=True this run's per-problem
    summaries and verdicts (what `python -m bench --workloads users` stores)."""
    p = argparse.ArgumentParser(prog="bench/users.py", description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=None, help="seconds per run (default 60)")
    p.add_argument("--problems", nargs="+", choices=PROBLEMS, default=None)
    p.add_argument(
        "--interval",
        type=float,
        default=None,
        help="seconds between error checks (default budget / 60, at least 1)",
    )
    p.add_argument("--sequential", action="store_true", help="one contender after the other")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_BUDGET:g} s on 2 problems")
    p.add_argument(
        "--out",
        default=None,
        help="results folder (default bench/results; --quick: a temporary one)",
    )
    p.add_argument("--note", default="", help="a note stored with this budget's run")
    p.add_argument("--child", nargs=3, metavar=("NAME", "EVAL", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    budget = a.budget or (QUICK_BUDGET if a.quick else 60.0)
    interval = a.interval or max(1.0, budget / 60)
    if a.child:
        uc.one_thread()
        name, ev, out = a.child
        try:
            res = fluxkern_child(name, ev, budget, interval)
        except Exception as exc:  # noqa: BLE001 -- a failed run is a row
            res = {"contender": "fluxkern", "error": f"{type(exc).__name__}: {exc}"}
        with open(out, "w") as fh:
            json.dump(res, fh)
        return 0
    problems = a.problems or (QUICK_PROBLEMS if a.quick else PROBLEMS)
    out_dir = a.out or (
        tempfile.mkdtemp(prefix="users-quick-") if a.quick else os.path.join(HERE, "results")
    )
    os.makedirs(out_dir, exist_ok=True)
    date = time.strftime("%Y-%m-%d")
    stem = os.path.join(out_dir, f"users-{date}")
    info = machine()
    print(
        f"machine: {info['cpu']} ({info['cores']} cores); fluxkern {info['fluxkern']}, torch "
        f"{info['torch']}; DeepXDE {info.get('deepxde', 'not found')}",
        flush=True,
    )
    payload: dict[str, Any] = {"date": date, "machine": info, "runs": {}}
    if os.path.exists(stem + ".json"):
        with open(stem + ".json") as fh:
            old = json.load(fh)
        payload["runs"] = old.get("runs", {})
        payload["note"] = old.get("note", "")
    key = f"{budget:g}s"
    command = "python bench/users.py " + " ".join(argv if argv is not None else sys.argv[1:])
    run = payload["runs"].get(key, {})
    run.update(command=command.strip(), interval_s=interval, machine=info)
    run["started"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    run.setdefault("problems", {})
    if a.note:
        run["note"] = a.note
    payload["runs"][key] = run
    for name in problems:
        print(f"== {name}: {budget:g} s each, load average {os.getloadavg()[0]:.2f}", flush=True)
        r = run_problem(name, budget, interval, parallel=not a.sequential)
        r["summary"] = summarise(r)
        r["verdict"] = verdict(r["summary"])
        run["problems"][name] = r
        s = r["summary"]
        for side in ("fluxkern", "deepxde"):
            row = s[side]
            shown = (
                row["failed"][:300]
                if "failed" in row
                else ", ".join(f"{k} {_fmt(v)}" for k, v in row.items())
            )
            print(f"   {side:8s} {shown}", flush=True)
        with open(stem + ".json", "w") as fh:
            json.dump(payload, fh, indent=1)
        with open(stem + ".md", "w") as fh:
            fh.write(markdown(payload))
    print(f"wrote {stem}.json and {stem}.md", flush=True)
    if summary:
        return {
            "file": stem + ".json",
            "budget_s": budget,
            "problems": {
                n: {k: run["problems"][n][k] for k in ("summary", "verdict")} for n in problems
            },
        }
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
