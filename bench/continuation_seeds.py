"""convection_diffusion over seeds with and without a parameter continuation of alpha: the epoch
(and training seconds) at which each run first reaches the reference's u 3.1e-5, and its error
at the end.

Each run is `fluxkern.solve("convection_diffusion", seed=S, epochs=E, continuation=...)` with
everything else the problem's defaults, in a child process with one torch thread; the error is
taken every 10 epochs on the problem's 128-point evaluation grid (those checks' time is left out
of the seconds). Runs go two at a time (--jobs). Writes a Markdown table and the rows as JSON.

    python bench/continuation_seeds.py [--schedules none 0.1:100 0.1:50 ...] [--seeds 0 1 2]
        [--epochs 300] [--jobs 2] [--out bench/results/continuation-DATE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

REFERENCE_U = 3.1e-5  # the reference code's u error (PROBLEMS.md)

CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(1)
import fluxkern as fk
from fluxkern.problems.convection_diffusion import exact
seed, epochs, cont = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
x = torch.linspace(0, 1, 128, dtype=torch.float64)[:, None]
ue = exact(x)["u"]
trace, spent, t0 = [], [0.0], time.perf_counter()
def check(epoch, model):
    if epoch % 10 == 0:
        c0 = time.perf_counter()
        with torch.no_grad():
            err = float((model(x)[:, 0] - ue).norm() / ue.norm())
        spent[0] += time.perf_counter() - c0
        trace.append((epoch, round(time.perf_counter() - t0 - spent[0], 2), err))
    return False
res = fk.solve("convection_diffusion", seed=seed, epochs=epochs, continuation=cont,
               callback=check, progress=False, plots=False)
print(json.dumps({"u": res["errors"]["u"], "trace": trace}))
"""


def run(seed: int, epochs: int, schedule: str) -> dict:
    cont = (
        {}
        if schedule == "none"
        else {"alpha": [float(schedule.split(":")[0]), int(schedule.split(":")[1])]}
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    args = [sys.executable, "-c", CHILD, str(seed), str(epochs), json.dumps(cont)]
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"schedule": schedule, "seed": seed, "error": proc.stderr.strip()[-300:]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    hit = next(((e, s) for e, s, err in out["trace"] if err <= REFERENCE_U), None)
    return {
        "schedule": schedule,
        "seed": seed,
        "reached_epoch": hit[0] if hit else None,
        "reached_s": hit[1] if hit else None,
        "final_u": out["u"],
        "trace": out["trace"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedules", nargs="+", default=["0.1:100", "none"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=f"bench/results/continuation-{time.strftime('%Y-%m-%d')}")
    a = ap.parse_args()
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in open("/proc/cpuinfo")
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    import torch

    import fluxkern

    load0 = os.getloadavg()[0]
    t0 = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    jobs = [(s, sch) for sch in a.schedules for s in a.seeds]
    with ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(lambda j: run(j[0], a.epochs, j[1]), jobs))
    head = (
        f"`python bench/continuation_seeds.py --schedules {' '.join(a.schedules)} --seeds "
        f"{' '.join(map(str, a.seeds))} --epochs {a.epochs} --jobs {a.jobs}`; started {t0}; "
        f"machine: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, torch "
        f"{torch.__version__}, fluxkern {fluxkern.__version__}; one torch thread per run, "
        f"{a.jobs} runs at a time; load average at start {load0:.2f}. Seconds are training "
        "seconds with the 10-epoch error checks left out."
    )
    lines = [
        "# convection_diffusion: seeds with and without a continuation of alpha",
        "",
        head,
        "",
        f"| schedule (alpha start:epochs) | seed | reached u {REFERENCE_U:g} at epoch | seconds "
        f"| u at epoch {a.epochs} |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['schedule']} | {r['seed']} | failed: {r['error']} | | |")
            continue
        ep = r["reached_epoch"] if r["reached_epoch"] is not None else "not reached"
        sec = f"{r['reached_s']:.1f}" if r["reached_s"] is not None else "-"
        lines.append(f"| {r['schedule']} | {r['seed']} | {ep} | {sec} | {r['final_u']:.2e} |")
        print(lines[-1], flush=True)
    for sch in a.schedules:
        got = [r for r in rows if r["schedule"] == sch and r.get("reached_epoch") is not None]
        lines.append(f"\n{sch}: {len(got)} of {len(a.seeds)} seeds reached the reference.")
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out + ".md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    with open(a.out + ".json", "w") as fh:
        json.dump({"header": head, "rows": rows}, fh, indent=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
