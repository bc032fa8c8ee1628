"""Continue a finished run with L-BFGS at another stopping tolerance (issue 11, the plateau).

(``--optimizer ssbroyden`` continues it with another optimizer of ``fluxkern.solve``.)

The 10000-epoch L-BFGS runs in results/ stop moving (convection from epoch ~3700, stokes from
~2000): each later epoch takes ~50 ms instead of ~600 ms, which is torch's L-BFGS stopping test
max |gradient| <= tolerance_grad (1e-7) firing at the first evaluation of the step. Is that test
what holds the error up, or is the optimizer on a plateau it would not leave anyway? This script
loads a run's trained state (results/<problem>/flux/model.pt: weights and multipliers), builds the
run's points and loss exactly as ``fluxkern solve`` does (same seed), and continues with a fresh
fluxkern.optim.LBFGS (lr 1, max_iter 20, history 100, strong Wolfe) whose ``tolerance_grad`` and
``tolerance_change`` are given, one dual update per epoch as before. model.pt holds no L-BFGS
history, so the continuation starts with an empty one (as after a restart; it refills within a
few epochs). Every ``--every`` epochs it records the errors on the problem's evaluation grid, the
loss, the closure evaluations of the epoch and the training seconds (evaluation left out) into a
JSON file with machine and versions.

Usage (from the repository root)::

    python bench/lbfgs_continue.py PROBLEM OUT.json [--epochs 400] [--every 50]
        [--tolerance-grad 0] [--tolerance-change 0] [--curvature-eps C]
        [--optimizer lbfgs] [--run results/PROBLEM/flux] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_info  # noqa: E402
from fidelity import Evaluator  # noqa: E402
from fluxkern import problems, solver  # noqa: E402
from fluxkern.optim.by_name import make_optimizer  # noqa: E402


def _save(path: str, payload: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("problem")
    ap.add_argument("out", help="JSON file to write (rewritten at every record)")
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--tolerance-grad", type=float, default=0.0)
    ap.add_argument("--tolerance-change", type=float, default=0.0)
    ap.add_argument(
        "--curvature-eps",
        type=float,
        default=None,
        help="scale-free curvature test y.s > c |s| |y| (default: torch's y.s > 1e-10)",
    )
    ap.add_argument(
        "--optimizer",
        default="lbfgs",
        help="continue with this optimizer of fluxkern.solve (lbfgs, ssbfgs, ssbroyden), "
        "the tolerances and curvature_eps above as its options",
    )
    ap.add_argument("--run", default=None, help="run folder with model.pt (results/PROBLEM/flux)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    run = args.run or os.path.join("results", args.problem, "flux")
    saved = torch.load(os.path.join(run, "model.pt"), map_location="cpu", weights_only=False)
    if saved.get("problem") != args.problem or saved.get("formulation") != "flux":
        raise SystemExit(f"{run}/model.pt is not a flux-form run of {args.problem}")
    problem = problems.get(args.problem)
    seed = int(saved["options"]["seed"])
    opts = solver.effective_options(problem, seed=seed, progress=False, plots=False)
    trainer = solver.make_trainer(problem, opts)
    trainer.model.load_state_dict(saved["model"])
    assert trainer.al is not None
    trainer.al.load_state_dict(saved["dual"])
    trainer.optimizer = make_optimizer(
        args.optimizer,
        trainer.params,
        trainer.al,
        options={
            "tolerance_grad": args.tolerance_grad,
            "tolerance_change": args.tolerance_change,
            "curvature_eps": args.curvature_eps,
        },
    )
    evaluator = Evaluator(problem, getattr(torch, opts.dtype))
    payload: dict[str, Any] = {
        "problem": args.problem,
        "run": run,
        "run_epochs": len(json.load(open(os.path.join(run, "history.json")))["loss"]),
        "seed": seed,
        "optimizer": args.optimizer,
        "tolerance_grad": args.tolerance_grad,
        "tolerance_change": args.tolerance_change,
        "curvature_eps": args.curvature_eps,
        "machine": machine_info(),
        "trajectory": [{"epoch": 0, "train_s": 0.0, "errors": evaluator(trainer.model)}],
    }
    print(json.dumps(payload["trajectory"][0]), flush=True)
    train_s = 0.0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        record = trainer.step()
        train_s += time.perf_counter() - t0
        if epoch % args.every == 0 or epoch == args.epochs:
            entry = {
                "epoch": epoch,
                "train_s": train_s,
                "loss": record.loss,
                "max_violation": record.max_violation,
                "evals_last_epoch": record.evals,
                "errors": evaluator(trainer.model),
            }
            payload["trajectory"].append(entry)
            print(json.dumps(entry), flush=True)
            _save(args.out, payload)
    _save(args.out, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
