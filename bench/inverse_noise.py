"""How to enforce noisy observations: exact constraint, tolerance (pointwise or on the RMS with a
global multiplier) or a least-squares penalty, on examples/inverse_heat.py (1% noise), same
data, seeds and epochs.

    python bench/inverse_noise.py [--epochs 150] [--seeds 0 1]

Writes bench/results/inverse-noise-DATE.md (and .json): u's relative L2 and kappa's relative
error per variant and seed, with the machine and its load.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def variants(sigma: float) -> dict[str, dict]:
    return {
        "exact (pointwise)": {},
        "tolerance 2.5 sigma (pointwise)": {"tolerance": 2.5 * sigma},
        "tolerance sigma (global, RMS)": {"multiplier": "global", "tolerance": sigma},
        "penalty 1": {"penalty": 1.0},
        "penalty 100": {"penalty": 100.0},
    }


def run(variant: str, seed: int, epochs: int) -> dict:
    import torch

    torch.set_num_threads(1)
    import fluxkern as fk

    spec = importlib.util.spec_from_file_location(
        "ih", os.path.join(ROOT, "examples", "inverse_heat.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.OBSERVE = variants(mod.SIGMA)[variant]
    r = fk.solve(mod.problem, epochs=epochs, out=None, progress=False, plots=False, seed=seed)
    return {
        "variant": variant,
        "seed": seed,
        "u": r["errors"]["u"],
        "kappa": r["unknowns"]["kappa"]["rel_error"],
        "wall_s": r["wall_time_s"],
        "load": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    a = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"
    rows = [run(v, s, a.epochs) for v in variants(1.0) for s in a.seeds]
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if "Model name" in ln), "?"
    )
    import torch

    import fluxkern as fk

    date = time.strftime("%Y-%m-%d")
    lines = [
        f"# Noisy observations on inverse_heat ({date})",
        "",
        f"{model}, {os.cpu_count()} cores, shared (1-min load per run below); one thread; "
        f"fluxkern {fk.__version__}, torch {torch.__version__}, float64, the solver's defaults, "
        f"{a.epochs} epochs; data examples/data/inverse_heat.csv (1% noise). "
        "`python bench/inverse_noise.py`",
        "",
        "| observations | seed | u rel. L2 | kappa rel. error | time | load |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['seed']} | {r['u']:.2e} | {r['kappa']:.2e} | "
            f"{r['wall_s']:.0f} s | {r['load']:.1f} |"
        )
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, f"inverse-noise-{date}")
    with open(stem + ".json", "w") as fh:
        json.dump(rows, fh, indent=1)
    with open(stem + ".md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
