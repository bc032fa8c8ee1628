"""The training loop: primal steps (L-BFGS or Adam), one dual update per epoch, checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import torch
from torch import Tensor, nn

import fluxkern
from fluxkern.duals import make_rule
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.nn import MLP
from fluxkern.optim import LBFGS
from fluxkern.problems.base import Problem
from fluxkern.settings import MATMUL_PRECISIONS, matmul_precision

__all__ = [
    "InterruptedRun",
    "NonFiniteLossError",
    "RunFileError",
    "SolveOptions",
    "effective_options",
    "option_names",
    "solve",
]

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"  # the trained network and multipliers (small; no optimizer state)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class InterruptedRun(KeyboardInterrupt):
    """Ctrl-C during training; says where the last checkpoint is."""


class RunFileError(ValueError):
    """A file or folder of the run cannot be read or written; files written before are kept.

    Attributes:
        path: The file or folder.
        reason: What is wrong with it (and what was kept), without the path.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message (strerror for OSError)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first.split(". ", 1)[0]  # torch's long messages: their first sentence


@dataclass
class SolveOptions:
    """Options of a run (a problem's defaults fill what is not given).

    Attributes:
        epochs: Outer iterations: one primal step and one dual update each.
        optimizer: "lbfgs" (strong Wolfe, max_iter 20, history 100) or "adam".
        lr: Learning rate (default 1.0 for L-BFGS, 1e-3 for Adam).
        dtype: "float32" or "float64".
        device: "cpu" or "cuda".
        backend: None (fastest), "torch", "cpu" or "cuda".
        seed: Seed of the network initialisation and of the points.
        formulation: "flux" (augmented Lagrangian) or "pinn" (second-order, plain penalties).
        dual: Dual rule: "rmsprop", "pecann" or "capu".
        dual_options: Options of the dual rule.
        matmul_precision: "ieee" (default) or "tf32": precision of the fused ops' float32 GEMMs
            on CUDA during the run (:func:`fluxkern.set_matmul_precision`; no effect on CPU or
            float64).
        checkpoint_every: Epochs between checkpoints (when `out` is set).
        out: Output folder, or None for no files.
        resume: Continue from out/checkpoint.pt.
        progress: Show a progress line on stderr.
        plots: Write PNG plots into `out`.
    """

    epochs: int = 1000
    optimizer: str = "lbfgs"
    lr: float | None = None
    dtype: str = "float64"
    device: str = "cpu"
    backend: str | None = None
    seed: int = 0
    formulation: str = "flux"
    dual: str = "rmsprop"
    dual_options: dict[str, float] = field(default_factory=dict)
    matmul_precision: str = "ieee"
    checkpoint_every: int = 100
    out: str | None = None
    resume: bool = False
    progress: bool = True
    plots: bool = True

    CHOICES = {
        "optimizer": ("lbfgs", "adam"),
        "dtype": ("float32", "float64"),
        "device": ("cpu", "cuda"),
        "backend": (None, "torch", "cpu", "cuda"),
        "formulation": ("flux", "pinn"),
        "dual": ("rmsprop", "pecann", "capu"),
        "matmul_precision": MATMUL_PRECISIONS,
    }

    def validate(self) -> None:
        """Raises ValueError naming a bad option and its valid choices."""
        for key, choices in self.CHOICES.items():
            val = getattr(self, key)
            if val not in choices:
                shown = ", ".join(str(c) for c in choices if c is not None)
                raise ValueError(f"{key} must be one of {shown}; got {val!r}")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer; got {self.epochs!r}")
        if not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 1:
            raise ValueError(
                f"checkpoint_every must be a positive integer; got {self.checkpoint_every!r}"
            )
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number; got {self.lr!r}")
        if self.resume and not self.out:
            raise ValueError("resume needs an output folder (out) holding checkpoint.pt")
        try:
            make_rule(self.dual, **self.dual_options)
        except TypeError as exc:
            raise ValueError(f"dual_options: {exc}") from None
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for, but no CUDA device is available")


def option_names() -> list[str]:
    """The names of the SolveOptions fields, in declaration order."""
    return [f.name for f in dataclasses.fields(SolveOptions)]


def _make_options(problem: Problem, overrides: dict[str, Any]) -> SolveOptions:
    valid = set(option_names())
    merged: dict[str, Any] = {k: v for k, v in problem.defaults.items() if k in valid}
    for k, v in overrides.items():
        if k not in valid:
            raise ValueError(f"unknown option {k!r}; valid: {', '.join(sorted(valid))}")
        if v is not None or k == "backend":
            merged[k] = v
    opts = SolveOptions(**merged)
    opts.validate()
    return opts


def effective_options(problem: Problem | str, **options: Any) -> SolveOptions:
    """The options solve(problem, **options) runs with: the problem's defaults, then options.

    Args:
        problem: A Problem or a registered name.
        **options: Fields of SolveOptions.

    Returns:
        The validated options.

    Raises:
        ValueError: A bad option, or a PINN formulation for a problem without one.
    """
    if isinstance(problem, str):
        problem = fluxkern.problems.resolve(problem)
    opts = _make_options(problem, options)
    if opts.formulation == "pinn" and not problem.has_pinn():
        raise ValueError(f"problem {problem.name!r} has no PINN form")
    return opts


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "fluxkern": fluxkern.__version__,
        "numpy": np.__version__,
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads()}


class _Progress:
    """A one-line progress display on stderr (redrawn in place on a terminal)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.tty = sys.stderr.isatty()
        self.t0 = time.perf_counter()
        self.last = 0.0

    def update(self, epoch: int, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        interval = 0.2 if self.tty else 10.0
        if not force and now - self.last < interval:
            return
        self.last = now
        frac = epoch / max(self.total, 1)
        bar = "#" * int(20 * frac)
        line = f"[{bar:<20}] {epoch}/{self.total} {now - self.t0:6.1f}s | {text}"
        if self.tty:
            sys.stderr.write("\r" + line[:160] + "\033[K")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _write_file(path: str, write: Callable[[IO[bytes]], None], kept: str) -> None:
    """Writes path atomically through path.tmp: a failure leaves an older file as it was.

    Raises:
        RunFileError: The file could not be written; `kept` ends its message.
    """
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch.save's writer raises RuntimeError
        if os.path.isfile(tmp):
            os.remove(tmp)
        raise RunFileError(path, f"cannot write it ({_reason(exc)}); {kept}") from None


def _atomic_save(obj: Any, path: str, kept: str = "an older file there is unchanged") -> None:
    _write_file(path, lambda fh: torch.save(obj, fh), kept)


def _prepare_out(out: str) -> None:
    """Creates the output folder and checks that files can be written in it.

    Raises:
        RunFileError: out is a file, cannot be created or is not writable.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunFileError(out, "the output folder is an existing file; name a folder")
    try:
        os.makedirs(out, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".fluxkern-", suffix=".tmp", dir=out)
    except OSError as exc:
        raise RunFileError(out, f"cannot write in the output folder ({_reason(exc)})") from None
    os.close(fd)
    os.remove(probe)


_CHECKPOINT_KEYS = (
    "problem",
    "formulation",
    "epoch",
    "elapsed_s",
    "model",
    "optimizer",
    "dual",
    "history",
    "rng",
)


def _read_checkpoint(path: str, problem: Problem, opts: SolveOptions) -> dict[str, Any]:
    """Loads and checks a checkpoint to resume from; never changes the file.

    Raises:
        RunFileError: Missing, unreadable, damaged, of another run, or past opts.epochs.
    """
    if not os.path.exists(path):
        raise RunFileError(path, "resume: no checkpoint here; run without resume to start anew")
    try:
        ck = torch.load(path, weights_only=False)
    except Exception as exc:  # torch.load raises many types on damaged files
        raise RunFileError(
            path, f"resume: not a readable checkpoint ({_reason(exc)}); the file is left as it is"
        ) from None
    if not isinstance(ck, dict) or any(k not in ck for k in _CHECKPOINT_KEYS):
        raise RunFileError(path, "resume: not a fluxkern checkpoint; the file is left as it is")
    if ck["problem"] != problem.name or ck["formulation"] != opts.formulation:
        raise RunFileError(
            path,
            f"resume: the checkpoint is of a {ck['problem']}/{ck['formulation']} run, "
            f"not {problem.name}/{opts.formulation}",
        )
    if ck["epoch"] > opts.epochs:
        raise RunFileError(
            path,
            f"resume: the checkpoint is at epoch {ck['epoch']}, past epochs={opts.epochs}; "
            f"ask for {ck['epoch']} epochs or more",
        )
    return ck


def build_model(
    problem: Problem, formulation: str, dtype: torch.dtype, device: torch.device
) -> MLP:
    """The problem's network, standardised by its domain's bounding box."""
    shift, scale = problem.domain.mean_std(dtype=dtype, device=device)
    outs = problem.output_names if formulation == "flux" else problem.pinn_output_names
    return MLP(
        len(problem.input_names),
        len(outs),
        problem.width,
        problem.depth,
        problem.activation,
        input_shift=shift,
        input_scale=scale,
        dtype=dtype,
        device=device,
    )


def predict(problem: Problem, model: nn.Module, formulation: str, x: Tensor) -> dict[str, Tensor]:
    """Network fields at points x, by output name."""
    outs = problem.output_names if formulation == "flux" else problem.pinn_output_names
    with torch.no_grad():
        y = model(x)
    return {name: y[:, k] for k, name in enumerate(outs)}


def solve(
    problem: Problem | str,
    callback: Callable[[int, nn.Module], bool] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Trains the problem's network and returns the results (also written to `out`).

    Args:
        problem: A Problem (e.g. from fluxkern.problem), a registered name, a problem file
            "path/to/file.py[:ATTR]" or "package.module:ATTR" (fluxkern.problems.resolve).
        callback: Called after every epoch as callback(epoch, model) (epoch counts from 1);
            returning True ends the run there (results then give the epochs actually run, and
            "stopped_by_callback": true). Its own time counts in the wall time; callers that
            time accuracy checks subtract them.
        **options: Fields of SolveOptions; the problem's defaults fill the rest.

    Returns:
        The results dict (what results.json holds).

    Raises:
        ValueError: A bad option, or a problem that cannot be found or loaded
            (fluxkern.problems.ProblemLoadError).
        RunFileError: A file or folder of the run cannot be read or written (a ValueError;
            what was written before stays: a failing resume changes no file, a failing
            checkpoint keeps the previous one, failing results or plots keep checkpoint.pt and
            model.pt).
        TypeError: `problem` is not a Problem.
        NonFiniteLossError: The loss became non-finite (the last good checkpoint is kept).
    """
    if isinstance(problem, str):
        problem = fluxkern.problems.resolve(problem)
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a fluxkern Problem or a name, got {problem!r}")
    opts = effective_options(problem, **options)
    with matmul_precision(opts.matmul_precision):
        return _run(problem, opts, callback)


def _run(
    problem: Problem, opts: SolveOptions, callback: Callable[[int, nn.Module], bool] | None
) -> dict[str, Any]:
    """solve() on validated options."""
    dtype = getattr(torch, opts.dtype)
    device = torch.device(opts.device)
    torch.manual_seed(opts.seed)
    model = build_model(problem, opts.formulation, dtype, device)
    params = list(model.parameters())

    al: AugmentedLagrangian | None = None
    if opts.formulation == "flux":
        terms = problem.flux_terms(opts.seed, dtype, device)
        al = AugmentedLagrangian(
            model, terms, dual=opts.dual, backend=opts.backend, **opts.dual_options
        )
        loss_fn = al
        backend = al.backend
    else:
        loss_fn = problem.pinn_loss(model, opts.seed, dtype, device)
        backend = "torch autograd (PINN)"

    if opts.optimizer == "lbfgs":
        # torch.optim.LBFGS's algorithm with the two-loop recursion fused (fluxkern.optim)
        opt: torch.optim.Optimizer = LBFGS(
            params, lr=opts.lr or 1.0, max_iter=20, history_size=100, line_search_fn="strong_wolfe"
        )
    else:
        opt = torch.optim.Adam(params, lr=opts.lr or 1e-3)

    history: dict[str, list[float]] = {
        "loss": [],
        "max_violation": [],
        "lambda_min": [],
        "lambda_max": [],
    }
    start_epoch, elapsed_before = 0, 0.0
    ckpt_path = os.path.join(opts.out, CHECKPOINT) if opts.out else None
    if opts.out:
        _prepare_out(opts.out)
    if opts.resume:
        ck = _read_checkpoint(ckpt_path, problem, opts)
        try:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            if al is not None:
                al.load_state_dict(ck["dual"])
            history = ck["history"]
            start_epoch, elapsed_before = ck["epoch"], ck["elapsed_s"]
            torch.set_rng_state(ck["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise RunFileError(
                ckpt_path, f"resume: the checkpoint does not fit this run ({_reason(exc)})"
            ) from None

    def checkpoint(epoch: int, elapsed: float) -> None:
        if ckpt_path is None:
            return
        _atomic_save(
            {
                "problem": problem.name,
                "formulation": opts.formulation,
                "epoch": epoch,
                "elapsed_s": elapsed,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "dual": al.state_dict() if al is not None else None,
                "history": history,
                "rng": torch.get_rng_state(),
                "options": dataclasses.asdict(opts),
            },
            ckpt_path,
            kept="the checkpoint there before, if any, is unchanged",
        )

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        return loss

    progress = _Progress(opts.epochs, opts.progress)
    t0 = time.perf_counter()
    last_ckpt = start_epoch if opts.resume else None
    epochs_run, stopped = opts.epochs, False
    for epoch in range(start_epoch, opts.epochs):
        try:
            if opts.optimizer == "lbfgs":
                loss_t = opt.step(closure)
            else:
                loss_t = closure()
                opt.step()
        except KeyboardInterrupt:
            progress.close()
            where = (
                f"the last checkpoint (epoch {last_ckpt}) is {ckpt_path}; continue with resume"
                if ckpt_path and last_ckpt is not None
                else "no checkpoint was written yet"
            )
            raise InterruptedRun(f"interrupted in epoch {epoch + 1}; {where}") from None
        loss = float(loss_t.detach())
        violation, lam_lo, lam_hi = math.nan, math.nan, math.nan
        if al is not None:
            values = al.update_multipliers()
            loss = al.last_loss if al.last_loss is not None else loss
            cons = [v.abs().max() for k, v in values.items() if k in al.multipliers and v.numel()]
            violation = float(torch.stack(cons).max()) if cons else 0.0
            lams = [v for v in al.multipliers.values() if v.numel()]
            if lams:
                lam_lo = float(min(v.min() for v in lams))
                lam_hi = float(max(v.max() for v in lams))
        finite_params = all(bool(torch.isfinite(p).all()) for p in params)
        if not math.isfinite(loss) or not finite_params:
            progress.close()
            raise NonFiniteLossError(
                f"non-finite loss at epoch {epoch + 1} of {problem.name} ({opts.formulation}); "
                + (
                    f"the last good checkpoint is {ckpt_path}"
                    if ckpt_path
                    else "no checkpoint was written (no output folder)"
                )
            )
        history["loss"].append(loss)
        history["max_violation"].append(violation)
        history["lambda_min"].append(lam_lo)
        history["lambda_max"].append(lam_hi)
        text = f"loss {loss:.3e}"
        if al is not None:
            text += f" | max|C| {violation:.2e} | lambda [{lam_lo:.2g}, {lam_hi:.2g}]"
        progress.update(epoch + 1, text, force=epoch + 1 == opts.epochs)
        if (epoch + 1) % opts.checkpoint_every == 0:
            try:
                checkpoint(epoch + 1, elapsed_before + time.perf_counter() - t0)
            except RunFileError:
                progress.close()
                raise
            last_ckpt = epoch + 1
        if callback is not None and callback(epoch + 1, model):
            epochs_run, stopped = epoch + 1, True
            break
    progress.close()
    wall = elapsed_before + time.perf_counter() - t0
    checkpoint(epochs_run, wall)
    if opts.out:  # the trained state first: a failure writing the results keeps it
        _atomic_save(
            {
                "problem": problem.name,
                "formulation": opts.formulation,
                "options": dataclasses.asdict(opts),
                "model": model.state_dict(),
                "dual": al.state_dict() if al is not None else None,
            },
            os.path.join(opts.out, MODEL),
            kept=f"the trained state is in {ckpt_path}",
        )

    grid = problem.eval_grid(dtype, device)
    fields = predict(problem, model, opts.formulation, grid.points)
    errors = problem.errors(fields, grid)
    results: dict[str, Any] = {
        "problem": problem.name,
        "formulation": opts.formulation,
        "errors": errors,
        "wall_time_s": wall,
        "epochs": epochs_run,
        "stopped_by_callback": stopped,
        "optimizer": opts.optimizer,
        "dtype": opts.dtype,
        "device": opts.device,
        "backend": backend,
        "matmul_precision": opts.matmul_precision,
        "seed": opts.seed,
        "dual": opts.dual if al is not None else None,
        "dual_options": dict(al.rule.options) if al is not None else None,
        "final_loss": history["loss"][-1] if history["loss"] else None,
        "final_max_violation": history["max_violation"][-1] if history["loss"] else None,
        "net": [
            len(problem.input_names),
            problem.width,
            problem.depth,
            len(problem.output_names if opts.formulation == "flux" else problem.pinn_output_names),
        ],
        "reference": problem.reference,
        "versions": versions(),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    results.update(problem.extra_results(lambda x: predict(problem, model, opts.formulation, x)))
    if opts.out:
        _write_outputs(opts, problem, grid, fields, results, history, al)
    return results


def _write_outputs(
    opts: SolveOptions,
    problem: Problem,
    grid: Any,
    fields: dict[str, Tensor],
    results: dict[str, Any],
    history: dict[str, list[float]],
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
    _write_file(os.path.join(out, "prediction.npz"), lambda fh: np.savez(fh, **arrays), kept)
    _write_file(os.path.join(out, "history.json"), lambda fh: _json(fh, history, None), kept)
    _write_file(os.path.join(out, "results.json"), lambda fh: _json(fh, results, 2), kept)
    if opts.plots:
        from fluxkern import plots

        try:
            plots.write_all(out, problem, grid, fields, exact, history, al)
        except OSError as exc:
            path = exc.filename if isinstance(exc.filename, str) else out
            path = path[: -len(".tmp")] if path.endswith(".tmp") else path
            raise RunFileError(path, f"cannot write the plot ({_reason(exc)}); {kept}") from None


def _json(fh: IO[bytes], obj: Any, indent: int | None) -> None:
    fh.write(json.dumps(obj, indent=indent).encode())
