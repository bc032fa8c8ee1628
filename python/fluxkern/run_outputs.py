"""What a finished run writes: its results dict (results.json), prediction.npz, history.json and
the plots, with the machine and versions every result names."""

from __future__ import annotations

import os
import platform
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fluxkern._version import __version__
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.options import SolveOptions
from fluxkern.problems.base import Problem
from fluxkern.runfiles import CHECKPOINT, MODEL, RunFileError, reason, write_file, write_json
from fluxkern.training import History, Trainer
from fluxkern.training.identified import unknowns_report

__all__ = ["machine", "run_results", "versions", "write_outputs"]


def versions() -> dict[str, str]:
    """The versions a result names: python, torch, fluxkern, numpy."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "fluxkern": __version__,
        "numpy": np.__version__,
    }


def machine() -> dict[str, Any]:
    """The machine a result names: the CPU model, its cores and torch's thread count."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads()}


def run_results(
    problem: Problem,
    opts: SolveOptions,
    trainer: Trainer,
    errors: dict[str, Any],
    predict: Callable[[Tensor], dict[str, Tensor]],
) -> dict[str, Any]:
    """The results dict of a finished run (what results.json holds).

    Args:
        problem: The problem solved.
        opts: The run's effective options.
        trainer: The trainer after the run.
        errors: The problem's errors on its evaluation grid.
        predict: The trained model's fields at points x (for the problem's extra results).

    Returns:
        The dict results.json holds.
    """
    al, last = trainer.al, trainer.history.last
    outs = problem.output_names if opts.formulation == "flux" else problem.pinn_output_names
    results: dict[str, Any] = {
        "problem": problem.name,
        "formulation": opts.formulation,
        "errors": errors,
        "wall_time_s": trainer.elapsed,
        "epochs": trainer.epoch,
        "stopped_by_callback": trainer.stopped,
        "optimizer": opts.optimizer,
        "optimizer_options": dict(opts.optimizer_options),
        "optimizer_class": type(trainer.optimizer).__name__,
        "then_optimizer": opts.then_optimizer,
        "then_optimizer_options": dict(opts.then_optimizer_options),
        "switched_at_epoch": trainer.switched_at,
        "time_limit": opts.time_limit,
        "stop_reason": trainer.stop_reason,
        "points": dict(opts.points),
        "problem_options": dict(opts.problem_options),
        "continuation": dict(opts.continuation),
        "resample_every": opts.resample_every,
        "resample_keep_optimizer": opts.resample_keep_optimizer,
        "resample_method": opts.resample_method,
        "resample_final": opts.resample_final,
        "resample_final_from": (trainer.extra_state.get("resample") or {}).get("final_from"),
        "resample_auto": opts.resample_auto,
        "resample_auto_from": (trainer.extra_state.get("auto_redraw") or {}).get("from"),
        "dtype": opts.dtype,
        "device": opts.device,
        "backend": al.backend if al is not None else "torch autograd (PINN)",
        "matmul_precision": opts.matmul_precision,
        "seed": opts.seed,
        "dual": opts.dual if al is not None else None,
        "dual_options": dict(al.rule.options) if al is not None else None,
        "final_loss": last.loss if last is not None else None,
        "final_max_violation": last.max_violation if last is not None else None,
        "net": [len(problem.input_names), problem.width, problem.depth, len(outs)],
        "reference": problem.reference,
        "versions": versions(),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    results["unknowns"] = unknowns_report(trainer.model)
    results.update(problem.extra_results(predict))
    return results


def write_outputs(
    opts: SolveOptions,
    problem: Problem,
    grid: Any,
    fields: dict[str, Tensor],
    results: dict[str, Any],
    history: History,
    al: AugmentedLagrangian | None,
) -> None:
    """prediction.npz, history.json, results.json and the plots, each written atomically.

    Raises:
        RunFileError: A file could not be written (checkpoint.pt and model.pt are kept).
    """
    out = str(opts.out)
    kept = (
        f"the trained state is kept in {os.path.join(out, CHECKPOINT)} "
        f"and {os.path.join(out, MODEL)}"
    )
    arrays: dict[str, np.ndarray] = {}
    for j, name in enumerate(problem.input_names):
        arrays[name] = grid.points[:, j].reshape(grid.shape).cpu().numpy()
    for name, val in fields.items():
        arrays[name] = val.reshape(grid.shape).cpu().numpy()
    exact = problem.exact(grid.points)
    saved = history.to_dict()
    write_file(os.path.join(out, "prediction.npz"), lambda fh: np.savez(fh, **arrays), kept)
    write_file(os.path.join(out, "history.json"), lambda fh: write_json(fh, saved, None), kept)
    write_file(os.path.join(out, "results.json"), lambda fh: write_json(fh, results, 2), kept)
    if opts.plots:
        from fluxkern import plots

        try:
            plots.write_all(out, problem, grid, fields, exact, saved, al)
        except OSError as exc:
            path = exc.filename if isinstance(exc.filename, str) else out
            path = path[: -len(".tmp")] if path.endswith(".tmp") else path
            raise RunFileError(path, f"cannot write the plot ({reason(exc)}); {kept}") from None
        except Exception as exc:  # a plot that cannot be drawn must not cost the run's results
            warnings.warn(
                f"plots not drawn ({type(exc).__name__}: {exc}); the results, history and "
                f"prediction are written in {out}",
                RuntimeWarning,
                stacklevel=2,
            )
