"""The inverse workload: unknown constants and a coefficient field identified from noisy
measurements (examples/inverse_*.py), fluxkern against DeepXDE's documented inverse recipe
(bench/inverse_deepxde.py: dde.Variable, PointSetBC), one thread each, one run at a time.

fluxkern: ``fluxkern.solve(example_file)`` with the file's and the library's defaults; time is
the only limit (epochs=10**9, a callback ends the run at the budget). DeepXDE: Adam lr 1e-3 for
half its budget, then L-BFGS, float32, same data, net size and point counts. Clock and checks as
bench/users.py (users_common.Trace: set-up counts, checks do not).

Per check: each unknown's relative error, each error field's relative L2 on the example's grid.
"target": the largest relative error of what is identified (the unknowns; the field k for
inverse_conductivity), "solution": the largest relative L2 of the solution fields. The figure of
the issue: the time fluxkern needs to reach DeepXDE's final accuracy (its final target and
solution errors, both), against the time DeepXDE needs to first reach it.

    python bench/inverse.py [--problems NAME ...] [--seeds 0 1 2] [--budget 120]
        [--deepxde-budget 300] [--deepxde-seeds 0]
    python -m bench --workloads inverse

Results: bench/results/inverse-DATE.json and .md (machine, versions, load averages).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import users
import users_common as uc

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROBLEMS = ("inverse_heat", "inverse_kovasznay", "inverse_conductivity")
TARGETS = {"inverse_heat": ("kappa",), "inverse_kovasznay": ("c1", "c2"),
           "inverse_conductivity": ("k",)}  # fmt: skip

__all__ = ["PROBLEMS", "fluxkern_child", "main", "markdown", "summarise"]


def fluxkern_child(name: str, eval_path: str, budget: float, interval: float, seed: int) -> dict:
    """fluxkern.solve(example) at a wall-time budget, with the error trace (unknowns included)."""
    import torch

    torch.set_num_threads(1)
    import fluxkern as fk
    from fluxkern import solver

    ev = uc.load_eval(eval_path)
    prob = fk.problems.resolve(users.example_path(name))
    pts = torch.as_tensor(ev["points"], dtype=torch.float64)
    state: dict[str, Any] = {}

    def evaluate() -> dict[str, float]:
        model = state["model"]
        fields = solver.predict(prob, model, "flux", pts)
        out = {f: uc.relative_l2(fields[f].numpy(), ev["exact"][f]) for f in ev["error_fields"]}
        sset = getattr(model, "unknowns", None)
        out.update(sset.errors() if sset is not None else {})
        return out

    trace = uc.Trace(budget, interval, evaluate)  # the clock starts here: set-up counts

    def callback(epoch: int, model: torch.nn.Module) -> bool:
        state["model"] = model
        return trace.step(epoch, "fluxkern")

    res = solver.solve(
        prob, callback=callback, epochs=10**9, progress=False, plots=False, seed=seed
    )
    return {
        **trace.as_dict(),
        "contender": "fluxkern",
        "epochs": res["epochs"],
        "optimizer_class": res.get("optimizer_class"),
        "identified": {n: u["value"] for n, u in (res.get("unknowns") or {}).items()},
        "net": [len(prob.input_names)] + [prob.width] * prob.depth + [len(prob.output_names)],
        "versions": {"fluxkern": fk.__version__, "torch": torch.__version__},
        "torch_threads": torch.get_num_threads(),
        "wall_s": round(time.perf_counter() - trace.clock.start, 2),
    }


def _run(cmd: list[str], out: str, log: str, timeout: float) -> dict[str, Any]:
    proc = users._launch(cmd, log)
    return users._wait(proc, timeout, out, log)


def run_one(name: str, side: str, seed: int, budget: float, work: str) -> dict[str, Any]:
    """One contender on one problem and seed (its own interpreter, one thread)."""
    ev = os.path.join(work, "eval.npz")
    if not os.path.exists(ev):
        users.write_eval(name, ev)
    out = os.path.join(work, f"{side}-{seed}.json")
    log = os.path.join(work, f"{side}-{seed}.log")
    interval = max(1.0, budget / 100)
    if side == "fluxkern":
        cmd = [sys.executable, os.path.join(HERE, "inverse.py"), "--child", name, ev, out]
    else:
        cmd = [users.deepxde_python(), os.path.join(HERE, "inverse_deepxde.py"), name, ev, out]
        if not os.path.exists(cmd[0]):
            return {"error": f"DeepXDE environment not found: {cmd[0]}"}
    cmd += ["--budget", str(budget), "--interval", str(interval), "--seed", str(seed)]
    load = os.getloadavg()
    res = _run(cmd, out, log, 2 * budget + 300)
    res["load_average_before"] = [round(v, 2) for v in load]
    res["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    return res


def _headline(errors: dict[str, float], keys: tuple[str, ...]) -> float | None:
    vals = [errors[k] for k in keys if errors.get(k) is not None]
    return max(vals) if vals else None


def _first_time(trace: dict[str, Any], levels: dict[tuple[str, ...], float]) -> float | None:
    """The first check at which every group of keys is at or below its level."""
    for t, e in zip(trace["times_s"], trace["errors"], strict=True):
        heads = [(_headline(e, keys), level) for keys, level in levels.items()]
        if all(h is not None and h <= level for h, level in heads):
            return t
    return None


def summarise(name: str, trace: dict[str, Any], reference: dict[str, Any] | None) -> dict:
    """A run's final target and solution errors, and its time to the reference's final target
    (DeepXDE's) and the reference's own time to it."""
    if "error" in trace or not trace.get("times_s"):
        return {"failed": trace.get("error", "no checks")}
    keys = TARGETS[name]
    sol = tuple(k for k in trace["errors"][-1] if k not in keys and k in ("u", "v", "p"))
    last = trace["errors"][-1]
    row: dict[str, Any] = {
        "target": _headline(last, keys),
        "solution": _headline(last, sol),
        "errors": last,
        "identified": trace.get("identified"),
        "time_s": trace["times_s"][-1],
        "epochs_or_steps": trace["steps"][-1],
    }
    for k in keys:  # the first time within 1% (unknowns) or 5% (a field), the bar
        bar = 0.05 if k == "k" else 0.01
        row[f"time_to_bar_{k}"] = _first_time(trace, {(k,): bar})
    if reference is not None and "error" not in reference and reference.get("times_s"):
        # DeepXDE's final accuracy: its final target and solution errors, both
        levels = {keys: _headline(reference["errors"][-1], keys),
                  sol: _headline(reference["errors"][-1], sol)}  # fmt: skip
        if all(v is not None for v in levels.values()):
            row["reference_final"] = list(levels.values())
            row["time_to_reference_final"] = _first_time(trace, levels)
            row["reference_time_to_own_final"] = _first_time(reference, levels)
    return row


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        f"# Inverse problems: fluxkern vs DeepXDE ({doc['date']})",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, shared with other work (load averages "
        "per run below; `uptime` at the start: " + doc["uptime"] + "). One thread per run, one "
        "run at a time. fluxkern "
        + str(m.get("fluxkern"))
        + ", torch "
        + str(m.get("torch"))
        + ", float64; DeepXDE "
        + str(m.get("deepxde"))
        + " (torch "
        + str(m.get("deepxde_torch"))
        + "), float32. Data: examples/data/*.csv, 1% Gaussian noise (examples/inverse_data.py).",
        "",
        f"Budgets: fluxkern {doc['budget']:g} s, DeepXDE {doc['deepxde_budget']:g} s "
        "(Adam half, then L-BFGS). target = largest relative error of the identified quantities "
        "(unknowns, or the field k); solution = largest relative L2 of u (v, p).",
        "",
        "| problem | contender | seed | target | solution | identified "
        "| time to the bar (1% / 5% k) | time to DeepXDE's final accuracy "
        "| DeepXDE's time to it | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["runs"]:
        s = r["summary"]
        if "failed" in s:
            head = f"| {r['problem']} | {r['side']} | {r['seed']} |"
            lines.append(f"{head} failed: {s['failed'][:80]} | | | | | | |")
            continue
        bars = [f"{k} {s[f'time_to_bar_{k}']:.0f} s" if s.get(f"time_to_bar_{k}") is not None
                else f"{k} not reached" for k in TARGETS[r["problem"]]]  # fmt: skip
        ident = ", ".join(f"{k} {v:.5g}" for k, v in (s.get("identified") or {}).items()) or "-"
        ttr = s.get("time_to_reference_final")
        own = s.get("reference_time_to_own_final")
        reach = "-" if "reference_final" not in s else "not reached"
        reach = f"{ttr:.1f} s" if ttr is not None else reach
        load = r["result"].get("load_average_before", ["?"])[0]
        lines.append(
            f"| {r['problem']} | {r['side']} | {r['seed']} | {s['target']:.2e} | "
            f"{s['solution']:.2e} | {ident} | {'; '.join(bars)} | "
            f"{reach} | "
            f"{'-' if own is None else f'{own:.1f} s'} | {load} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, summary: bool = False) -> Any:
    """The command line; returns the exit code, or with summary=True the runs' summaries."""
    p = argparse.ArgumentParser(prog="bench/inverse.py", description=__doc__.splitlines()[0])
    p.add_argument("--problems", nargs="+", choices=PROBLEMS, default=list(PROBLEMS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--budget", type=float, default=120.0, help="fluxkern seconds per run")
    p.add_argument("--deepxde-budget", type=float, default=300.0)
    p.add_argument("--deepxde-seeds", nargs="*", type=int, default=[0])
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    p.add_argument("--child", nargs=3, metavar=("NAME", "EVAL", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        uc.one_thread()
        name, ev, out = a.child
        res = fluxkern_child(name, ev, a.budget, a.interval, a.seed)
        with open(out, "w") as fh:
            json.dump(res, fh)
        return 0
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    doc: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": users.machine(),
        "uptime": uptime,
        "budget": a.budget,
        "deepxde_budget": a.deepxde_budget,
        "runs": [],
    }
    for name in a.problems:
        work = tempfile.mkdtemp(prefix=f"inverse-{name}-")
        refs: dict[int, dict[str, Any]] = {}
        for seed in a.deepxde_seeds:
            res = run_one(name, "deepxde", seed, a.deepxde_budget, work)
            refs[seed] = res
            doc["runs"].append({"problem": name, "side": "deepxde", "seed": seed, "result": res,
                                "summary": summarise(name, res, None)})  # fmt: skip
            print(json.dumps(doc["runs"][-1]["summary"]), flush=True)
        for seed in a.seeds:
            res = run_one(name, "fluxkern", seed, a.budget, work)
            ref = refs.get(seed, refs.get(min(refs))) if refs else None
            doc["runs"].append({"problem": name, "side": "fluxkern", "seed": seed, "result": res,
                                "summary": summarise(name, res, ref)})  # fmt: skip
            print(json.dumps(doc["runs"][-1]["summary"]), flush=True)
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, f"inverse-{doc['date']}")
    with open(stem + ".json", "w") as fh:
        json.dump(doc, fh, indent=1)
    with open(stem + ".md", "w") as fh:
        fh.write(markdown(doc))
    print(f"wrote {stem}.json and .md")
    if summary:
        return [{k: r[k] for k in ("problem", "side", "seed", "summary")} for r in doc["runs"]]
    return 0


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    raise SystemExit(main())
