"""Runs benchmark problems with the solver and writes results/<problem>/<formulation>/.

Each run writes results.json (errors, wall time, versions, machine), prediction.npz and plots.
The README table is made from these files by bench/results_table.py.

Usage: python bench/run_problems.py [NAME ...] [--formulations flux pinn] [--epochs N]
       [--time-budget SECONDS] [--stop-after SECONDS] [--trace-every N] [--out results]
       [--seed S] [--optimizer NAME] [--optimizer-options JSON]
       [--then-optimizer NAME --switch-epoch N [--then-optimizer-options JSON]]
       [--problem-default KEY=JSON ...] [--resample-every N [--resample-keep-optimizer]]
--epochs overrides every problem's default; --time-budget scales each problem's epochs down
(never up) so that a run ends near that many seconds, from a short timed probe; --stop-after
ends a run after the first epoch past that many training seconds (fluxkern.training.TimeBudget;
results then give the epochs actually run). --trace-every N records the errors every N epochs
(bench/evaluator.py's Evaluator: relative L2, the reference's matrix 2-norm where it used one,
cavity's centreline deviations) with the training seconds so far, the evaluation time left out,
in results.json under "trajectory" (also written to trajectory.json as the run goes).
--resample-every N redraws the flux runs' points every N epochs (solve's resample_every).
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
from fluxkern.training import Callback, EpochRecord, TimeBudget, Trainer  # noqa: E402


class Trace(Callback):
    """Records the errors every `every` epochs and at the end, with the training seconds so far.

    Training seconds are the trainer's (fluxkern.training.Trainer.elapsed) less the time of
    these evaluations and of writing trajectory.json.

    Args:
        problem: The problem being solved (flux formulation).
        every: Epochs between evaluations.
        out: Folder for trajectory.json.
    """

    def __init__(self, problem: problems.Problem, every: int, out: str) -> None:
        from evaluator import Evaluator  # bench/evaluator.py

        self.evaluator = Evaluator(problem, torch.float64)
        self.every, self.out = every, out
        self.points: list[dict] = []
        self.excluded = 0.0

    def record(self, trainer: Trainer) -> None:
        t = time.perf_counter()
        errors = self.evaluator(trainer.model)
        self.points.append(
            {"epoch": trainer.epoch, "train_s": trainer.elapsed - self.excluded, "errors": errors}
        )
        os.makedirs(self.out, exist_ok=True)
        tmp = os.path.join(self.out, "trajectory.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.points, f, indent=1)
        os.replace(tmp, os.path.join(self.out, "trajectory.json"))
        self.excluded += time.perf_counter() - t

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        if record.epoch % self.every == 0:
            self.record(trainer)
        return None

    def on_end(self, trainer: Trainer) -> None:
        if not self.points or self.points[-1]["epoch"] != trainer.epoch:
            self.record(trainer)


def with_overrides(prob: problems.Problem, overrides: dict) -> problems.Problem:
    """The problem with some of its defaults (and width / depth) replaced."""
    rest = dict(overrides)
    prob.width = rest.pop("width", prob.width)
    prob.depth = rest.pop("depth", prob.depth)
    prob.defaults = {**prob.defaults, **rest}
    return prob


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="problems (default: all)")
    p.add_argument("--formulations", nargs="+", default=["flux", "pinn"])
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--time-budget", type=float, default=None)
    p.add_argument("--out", default="results")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--stop-after", type=float, default=None, help="training seconds per run")
    p.add_argument("--trace-every", type=int, default=None, help="epochs between error records")
    p.add_argument(
        "--optimizer-options",
        type=json.loads,
        default=None,
        help="JSON object of the flux runs' optimizer options, e.g. '{\"curvature_eps\": 1e-12}'",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of every run (default: solve's)")
    p.add_argument(
        "--optimizer", default=None, help="the flux runs' optimizer (default: the problem's)"
    )
    p.add_argument("--then-optimizer", default=None, help="the flux runs' second optimizer")
    p.add_argument("--switch-epoch", type=int, default=None, help="epochs before the switch")
    p.add_argument("--then-optimizer-options", type=json.loads, default=None, help="JSON, as above")
    p.add_argument(
        "--problem-default",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="replace one of the problems' defaults (points, ic_form, ...), e.g. n_interior=8000"
        " or ic_form='\"squared\"'; width=N and depth=N set the network; repeatable",
    )
    p.add_argument(
        "--resample-every",
        type=int,
        default=None,
        metavar="N",
        help="flux runs: redraw the points every N epochs (solve's resample_every; pointwise "
        "multipliers reset)",
    )
    p.add_argument(
        "--resample-keep-optimizer",
        action="store_true",
        help="with --resample-every: keep the optimizer's state across a redraw (default: reset)",
    )
    args = p.parse_args(argv)
    if args.resample_every is not None and args.resample_every < 1:
        p.error(f"--resample-every takes a positive number of epochs; got {args.resample_every}")
    resample = {}
    if args.resample_every is not None:
        resample = {
            "resample_every": args.resample_every,
            "resample_keep_optimizer": args.resample_keep_optimizer,
        }
    overrides = {}
    for item in args.problem_default:
        key, sep, val = item.partition("=")
        if not sep:
            p.error(f"--problem-default takes KEY=JSON; got {item!r}")
        overrides[key] = json.loads(val)
    given = {
        "then_optimizer": args.then_optimizer,
        "switch_epoch": args.switch_epoch,
        "then_optimizer_options": args.then_optimizer_options,
    }
    switch = {k: v for k, v in given.items() if v is not None}
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.names or problems.names()
    for name in names:
        prob = with_overrides(problems.get(name), overrides)
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
            prob = with_overrides(problems.get(name), overrides)
            traced = args.trace_every and form == "flux"
            opt_kw = args.optimizer_options is not None and form == "flux"
            trace = Trace(prob, args.trace_every, out) if traced else None
            cbs = [TimeBudget(args.stop_after)] if args.stop_after else []
            cbs += [trace] if trace is not None else []
            try:
                res = solver.solve(
                    prob,
                    epochs=epochs,
                    formulation=form,
                    out=out,
                    checkpoint_every=max(1, min(500, epochs // 5)),
                    callbacks=cbs,
                    **({"optimizer_options": args.optimizer_options} if opt_kw else {}),
                    **({"optimizer": args.optimizer} if args.optimizer and form == "flux" else {}),
                    **({"seed": args.seed} if args.seed is not None else {}),
                    **(switch if form == "flux" else {}),
                    **(resample if form == "flux" else {}),
                )
            except solver.NonFiniteLossError as exc:
                print(f"   stopped: {exc}", flush=True)
                continue
            if overrides:
                res["problem_overrides"] = overrides
            if trace is not None:
                res["trajectory"] = trace.points
                res["trace_eval_s"] = trace.excluded  # included in wall_time_s
            if trace is not None or overrides:
                tmp = os.path.join(out, "results.json.tmp")
                with open(tmp, "w") as f:
                    json.dump(res, f, indent=2)
                os.replace(tmp, os.path.join(out, "results.json"))
            print(f"   errors {json.dumps(res['errors'])}, {res['wall_time_s']:.0f} s", flush=True)
            ckpt = os.path.join(out, solver.CHECKPOINT)
            if os.path.exists(ckpt):
                os.remove(ckpt)  # large and machine-specific; results.json has what matters
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
