"""Runs benchmark problems with the solver and writes results/<problem>/<formulation>/.

Each run writes results.json (errors, wall time, versions, machine), prediction.npz and plots.
The README table is made from these files by bench/results_table.py.

Usage: python bench/run_problems.py [NAME ...] [--formulations flux pinn] [--epochs N]
       [--time-budget SECONDS] [--out results]
--epochs overrides every problem's default; --time-budget scales each problem's epochs down
(never up) so that a run ends near that many seconds, from a short timed probe.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fluxkern import problems, solver  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="problems (default: all)")
    p.add_argument("--formulations", nargs="+", default=["flux", "pinn"])
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--time-budget", type=float, default=None)
    p.add_argument("--out", default="results")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.names or problems.names()
    for name in names:
        prob = problems.get(name)
        for form in args.formulations:
            if form == "pinn" and not prob.has_pinn():
                continue
            epochs = args.epochs or prob.defaults.get("epochs", 1000)
            if args.time_budget:
                probe = 5
                t0 = time.perf_counter()
                solver.solve(problems.get(name), epochs=probe, formulation=form, progress=False)
                per_epoch = (time.perf_counter() - t0) / probe
                epochs = max(probe, min(epochs, int(args.time_budget / per_epoch)))
            out = os.path.join(args.out, name, form)
            print(f"== {name} ({form}): {epochs} epochs -> {out}", flush=True)
            try:
                res = solver.solve(
                    problems.get(name),
                    epochs=epochs,
                    formulation=form,
                    out=out,
                    checkpoint_every=max(1, epochs // 5),
                )
            except solver.NonFiniteLossError as exc:
                print(f"   stopped: {exc}", flush=True)
                continue
            print(f"   errors {json.dumps(res['errors'])}, {res['wall_time_s']:.0f} s", flush=True)
            ckpt = os.path.join(out, solver.CHECKPOINT)
            if os.path.exists(ckpt):
                os.remove(ckpt)  # large and machine-specific; results.json has what matters
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
