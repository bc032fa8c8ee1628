"""solve(): a problem's run, composed of a Trainer and its callbacks, with its files and results.

The options of a run are :class:`SolveOptions` (:mod:`fluxkern.options`); the loop itself is
:class:`fluxkern.training.Trainer`, and the run's files are written by :mod:`fluxkern.runfiles`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fluxkern import problems
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.nn import MLP
from fluxkern.optim.by_name import make_optimizer
from fluxkern.options import SolveOptions, effective_options, make_options, option_names
from fluxkern.problems.base import Problem
from fluxkern.problems.configure import configure
from fluxkern.resume import changed_options, check_fields, check_identity, run_identity
from fluxkern.run_context import RunContext
from fluxkern.run_outputs import machine, run_results, versions, write_outputs
from fluxkern.runfiles import (
    CHECKPOINT,
    MODEL,
    OutputLock,
    RunFileError,
    atomic_save,
    prepare_out,
    read_checkpoint,
    reason,
)
from fluxkern.settings import matmul_precision
from fluxkern.signals import InterruptedRun, TerminatedRun, stop_on_sigterm
from fluxkern.training import (
    AutoRedraw,
    Callback,
    Checkpoint,
    EpochFunction,
    FinalPhase,
    NonFiniteLossError,
    Progress,
    Resample,
    SwitchOptimizer,
    TimeBudget,
    Trainer,
    UnseenCheck,
)
from fluxkern.training.conditioning import conditioning_results
from fluxkern.training.continuation import Continuation
from fluxkern.training.identified import TrackUnknowns
from fluxkern.training.stall import StallCheck

# The automatic redraws' interval (resample_auto): checks until the answer is flagged, then
# residual-based redraws, both every AUTO_EVERY epochs (what the front of
# examples/viscous_front.py was measured with: bench/results/robustness-2026-12-07.md).
AUTO_EVERY = 20

__all__ = [
    "AUTO_EVERY",
    "CHECKPOINT",
    "MODEL",
    "InterruptedRun",
    "NonFiniteLossError",
    "RunFileError",
    "SolveOptions",
    "TerminatedRun",
    "effective_options",
    "make_options",
    "make_trainer",
    "machine",
    "option_names",
    "solve",
    "versions",
]


def build_model(
    problem: Problem,
    formulation: str,
    dtype: torch.dtype,
    device: torch.device,
    output_scale: Mapping[str, float] | None = None,
) -> MLP:
    """The problem's network, standardised by its domain's bounding box, its outputs scaled
    by name (SolveOptions.output_scale; unnamed ones by 1)."""
    shift, scale = problem.domain.mean_std(dtype=dtype, device=device)
    outs = problem.output_names if formulation == "flux" else problem.pinn_output_names
    scales = [float((output_scale or {}).get(name, 1.0)) for name in outs]
    return MLP(
        len(problem.input_names),
        len(outs),
        problem.width,
        problem.depth,
        problem.activation,
        input_shift=shift,
        input_scale=scale,
        output_scale=scales,
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
    callbacks: Sequence[Callback] = (),
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
        callbacks: More :class:`fluxkern.training.Callback` objects (e.g. Resample,
            EarlyStopping, TimeBudget, CSVLogger), run after each epoch after the progress
            line and the checkpoint and before `callback`; one that stops the run also sets
            "stopped_by_callback".
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
        InterruptedRun: Ctrl-C during training (the message names the last checkpoint).
    """
    if isinstance(problem, str):
        problem = problems.resolve(problem)
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a fluxkern Problem or a name, got {problem!r}")
    opts = effective_options(problem, **options)
    problem = configure(problem, opts.points, opts.problem_options, option_names())
    extra = list(callbacks)
    if opts.time_limit is not None:
        extra.insert(0, TimeBudget(opts.time_limit))
    if opts.continuation:
        extra.insert(0, Continuation(problem, opts.continuation))
    if opts.resample_every is not None:
        extra.insert(0, _resample(opts))
    elif opts.resample_auto and opts.unseen_check and opts.formulation == "flux":
        extra.insert(0, AutoRedraw(None, AUTO_EVERY, _final(opts)))  # (not distributed: _fit)
    if callback is not None:
        extra.append(EpochFunction(callback))
    with matmul_precision(opts.matmul_precision):
        return _run(problem, opts, extra)


def _resample(opts: SolveOptions) -> Resample:
    """The redraws of a run with resample_every: their method and final phase."""
    assert opts.resample_every is not None
    return Resample(
        opts.resample_every,
        reset_optimizer=not opts.resample_keep_optimizer,
        method=opts.resample_method,
        final=_final(opts),
    )


def _final(opts: SolveOptions) -> FinalPhase | None:
    """The final phase of a run's redraws (flux form, resample_final > 0), or None."""
    if opts.resample_final > 0 and opts.formulation == "flux":
        return FinalPhase(opts.resample_final, 2, opts.time_limit)
    return None


def make_trainer(problem: Problem, opts: SolveOptions) -> Trainer:
    """The Trainer of a run: seeds torch, then builds the model, the points and the optimizer
    (of the problem with the run's points and problem_options).

    Args:
        problem: The problem.
        opts: Validated options.

    Returns:
        The trainer, at epoch 0.
    """
    problem = configure(problem, opts.points, opts.problem_options, option_names())
    dtype = getattr(torch, opts.dtype)
    device = torch.device(opts.device)
    torch.manual_seed(opts.seed)
    model = build_model(problem, opts.formulation, dtype, device, opts.output_scale)
    loss: AugmentedLagrangian | Callable[[], Tensor]
    if opts.formulation == "flux":
        terms = problem.flux_terms(opts.seed, dtype, device)
        loss = AugmentedLagrangian(
            model, terms, dual=opts.dual, backend=opts.backend, **opts.dual_options
        )
        _warn_signed_with_long_steps(loss, opts)
    else:
        loss = problem.pinn_loss(model, opts.seed, dtype, device)
    params = list(model.parameters())  # after the loss: it attaches the problem's unknowns
    opt = make_optimizer(opts.optimizer, params, loss, opts.lr, opts.optimizer_options)
    name = f"{problem.name} ({opts.formulation})"
    return Trainer(model, loss, opt, name=name, problem=problem, seed=opts.seed)


def _warn_signed_with_long_steps(al: AugmentedLagrangian, opts: SolveOptions) -> None:
    """Warns when a dense quasi-Newton optimizer meets a signed constraint."""
    dense = {opts.optimizer, opts.then_optimizer} & {"ssbfgs", "ssbroyden"}
    signed = [t.name for t in al.terms if getattr(t, "form", "squared") == "signed"]
    if dense and signed:
        warnings.warn(
            f"{', '.join(sorted(dense))} with the signed constraint(s) {', '.join(signed)}: with "
            "the multipliers fixed during an epoch the augmented Lagrangian is linear in a signed "
            "residual, unbounded below, and long quasi-Newton steps can follow it until the run "
            "diverges (composite_heat's signed initial condition does); use form='squared' "
            "(composite_heat: ic_form 'squared') or lbfgs",
            UserWarning,
            stacklevel=3,
        )


def _then_optimizer(opts: SolveOptions) -> SwitchOptimizer | None:
    """The callback that switches to opts.then_optimizer, or None without one."""
    name = opts.then_optimizer
    if name is None:
        return None
    assert opts.switch_epoch is not None  # SolveOptions.validate
    options = dict(opts.then_optimizer_options)
    return SwitchOptimizer(
        opts.switch_epoch,
        lambda t: make_optimizer(name, t.params, t.loss_fn, None, options),
    )


def _resume(
    ctx: RunContext,
    trainer: Trainer,
    path: str,
    problem: Problem,
    opts: SolveOptions,
    switch: SwitchOptimizer | None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Loads out/checkpoint.pt into the trainer (with the second optimizer if it was saved
    after the switch), keeping this run's learning rate; the writing process reads and checks
    it, every process loads it.

    Returns:
        The checkpoint's saved options (for the record of what the resume changed).

    Raises:
        RunFileError: No, a damaged or another run's checkpoint; or it does not fit.
    """

    def read() -> dict[str, Any]:
        ck = read_checkpoint(path)
        identity = run_identity(problem, dataclasses.asdict(opts))
        check_fields(ck, path, identity, opts.epochs)
        if ck.get("switched_at") is not None and switch is None:
            raise RunFileError(
                path,
                "resume: the checkpoint was saved after a switch of optimizer; give the same "
                "then_optimizer and switch_epoch",
            )
        check_identity(ck, path, identity)
        return ck

    ck = ctx.read(read)
    if ck.get("switched_at") is not None:
        assert switch is not None
        trainer.set_optimizer(switch.make(trainer))
    for cb in callbacks:  # a final phase's denser set first: its multipliers are saved on it
        if isinstance(cb, (Resample, AutoRedraw)):
            cb.before_load(trainer, ck.get("extra") or {})
    load_trainer_state(trainer, ck, path)
    return ck.get("options") or {}


def load_trainer_state(trainer: Trainer, ck: dict[str, Any], path: str) -> None:
    """trainer.load_state_dict(ck), keeping the learning rate the trainer was built with (a
    resume may change it; the checkpoint's is replaced).

    Raises:
        RunFileError: The checkpoint does not fit the trainer.
    """
    lrs = [g.get("lr") for g in trainer.optimizer.param_groups]
    try:
        trainer.load_state_dict(ck)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise RunFileError(
            path, f"resume: the checkpoint does not fit this run ({reason(exc)})"
        ) from None
    for group, lr in zip(trainer.optimizer.param_groups, lrs, strict=True):
        if lr is not None:
            group["lr"] = lr


def _fit(
    trainer: Trainer,
    opts: SolveOptions,
    ckpt: Checkpoint | None,
    extra: list[Callback],
    switch: SwitchOptimizer | None = None,
) -> tuple[UnseenCheck | None, StallCheck]:
    """Runs trainer.fit with the unseen-point check, the progress line, the switch of
    optimizer, the checkpoints and the caller's callbacks, and turns Ctrl-C and a non-finite
    loss into solve()'s errors. Returns the unseen-point check (None when off) and the stall
    check (:class:`fluxkern.training.stall.StallCheck`)."""
    progress = Progress(opts.progress)
    checked = opts.unseen_check and opts.formulation == "flux" and not opts.distributed
    unseen = UnseenCheck(display=progress) if checked else None
    # the automatic redraws read the run's check (none in a distributed run: they stay off)
    extra = [cb for cb in extra if not isinstance(cb, AutoRedraw) or unseen is not None]
    for cb in extra:
        if isinstance(cb, AutoRedraw):
            cb.check = unseen
        if isinstance(cb, Continuation):
            cb.display = progress
    cbs: list[Callback] = [TrackUnknowns()] if hasattr(trainer.model, "unknowns") else []
    stall = StallCheck(display=progress)
    cbs += ([unseen] if unseen is not None else []) + [stall, progress]
    cbs += [switch] if switch is not None else []
    cbs += [ckpt] if ckpt is not None else []
    try:
        with stop_on_sigterm() as sigterm:
            trainer.fit(opts.epochs, cbs + [sigterm] + extra)
    except NonFiniteLossError as exc:
        raise NonFiniteLossError(f"{exc}; {_last_checkpoint(ckpt, 'good ')}") from None
    except KeyboardInterrupt:
        where = _last_checkpoint(ckpt, "")
        where += "; continue with resume" if ckpt is not None and ckpt.last_epoch else ""
        raise InterruptedRun(f"interrupted in epoch {trainer.current_epoch}; {where}") from None
    if sigterm.received:
        where = _last_checkpoint(ckpt, "")
        where += "; continue with resume" if ckpt is not None and ckpt.last_epoch else ""
        raise TerminatedRun(f"terminated (SIGTERM) after epoch {trainer.epoch}; {where}")
    return unseen, stall


def _last_checkpoint(ckpt: Checkpoint | None, good: str) -> str:
    """Where the last checkpoint written (or resumed from) is, or that there is none."""
    if ckpt is None:
        return "no checkpoint was written (no output folder)"
    if ckpt.last_epoch is None or not os.path.isfile(ckpt.path):
        return "no checkpoint was written yet"
    return f"the last {good}checkpoint (epoch {ckpt.last_epoch}) is {ckpt.path}"


def _run(problem: Problem, opts: SolveOptions, callbacks: list[Callback]) -> dict[str, Any]:
    """solve() on validated options: build, resume, fit, save the model, evaluate, write; in
    one process or as one rank of many (the context says what differs)."""
    ctx: RunContext = RunContext()
    if opts.distributed:
        from fluxkern.distributed.run import DistributedContext

        ctx = DistributedContext.join(opts.device)
    trainer = ctx.prepare(_build(problem, opts))
    switch = _then_optimizer(opts)
    shown = dataclasses.replace(opts, progress=opts.progress and ctx.is_root)
    if not opts.out:
        checks = _fit(trainer, shown, None, callbacks, switch)
        return _finish(ctx, problem, opts, trainer, {}, *checks)
    out = opts.out
    lock = OutputLock(out)
    ctx.on_root(lambda: (prepare_out(out), lock.acquire()))
    try:
        ckpt = ctx.checkpoint(
            os.path.join(out, CHECKPOINT), opts.checkpoint_every, checkpoint_meta(problem, opts)
        )
        resumed: dict[str, Any] = {}
        if opts.resume:
            saved = _resume(ctx, trainer, ckpt.path, problem, opts, switch, callbacks)
            ckpt.last_epoch = trainer.epoch
            changed = changed_options(saved, dataclasses.asdict(opts))
            resumed = {"from_epoch": trainer.epoch, "changed_options": changed}
        checks = _fit(trainer, shown, ckpt, callbacks, switch)
        return _finish(ctx, problem, opts, trainer, resumed, *checks)
    finally:
        lock.release()  # held by the writing process only


def _build(problem: Problem, opts: SolveOptions) -> Trainer:
    """make_trainer, with running out of memory (too many points) as one line."""
    try:
        return make_trainer(problem, opts)
    except MemoryError:
        raise ValueError(
            f"{problem.name}: out of memory while building the run (the network and the "
            "points); use fewer points"
        ) from None
    except RuntimeError as exc:
        if "memory" not in str(exc):
            raise
        raise ValueError(
            f"{problem.name}: out of memory while building the run ({reason(exc)}); use fewer "
            "points"
        ) from None


def checkpoint_meta(problem: Problem, opts: SolveOptions) -> dict[str, Any]:
    """What a run's checkpoints hold besides the trainer's state: the problem, the options
    and the run's identity (what a resume must match, fluxkern.resume)."""
    options = dataclasses.asdict(opts)
    return {
        "problem": problem.name,
        "formulation": opts.formulation,
        "options": options,
        "identity": run_identity(problem, options),
    }


def _finish(
    ctx: RunContext,
    problem: Problem,
    opts: SolveOptions,
    trainer: Trainer,
    resumed: dict[str, Any],
    unseen: UnseenCheck | None = None,
    stall: StallCheck | None = None,
) -> dict[str, Any]:
    """After training: model.pt (the trained state first: a failure writing the results keeps
    it), the evaluation and the results files, by the writing process; the results on all."""
    al = ctx.whole_loss(trainer)  # a collective for a distributed run

    def finish() -> dict[str, Any]:
        if opts.out:
            atomic_save(
                {
                    "problem": problem.name,
                    "formulation": opts.formulation,
                    "options": dataclasses.asdict(opts),
                    "model": trainer.model.state_dict(),
                    "dual": al.state_dict() if al is not None else None,
                },
                os.path.join(opts.out, MODEL),
                kept=f"the trained state is in {os.path.join(opts.out, CHECKPOINT)}",
            )
        grid = problem.eval_grid(getattr(torch, opts.dtype), torch.device(opts.device))
        fields = predict(problem, trainer.model, opts.formulation, grid.points)
        results = run_results(
            problem,
            opts,
            trainer,
            problem.errors(fields, grid),
            _predictor(problem, trainer.model, opts),
        )
        results["resumed"] = resumed or None
        results["unseen"] = unseen.results() if unseen is not None else None
        results["stall"] = stall.results() if stall is not None else None
        results["conditioning"] = None  # on with the unseen-point check (flux, one process)
        if unseen is not None:
            results["conditioning"] = conditioning_results(trainer, Progress(opts.progress).note)
        results["distributed"] = ctx.info()
        if opts.out:
            write_outputs(opts, problem, grid, fields, results, trainer.history, al)
        return results

    return ctx.on_root(finish)


def _predictor(
    problem: Problem, model: nn.Module, opts: SolveOptions
) -> Callable[[Tensor], dict[str, Tensor]]:
    """The trained model's fields at points x, for the problem's extra results."""
    return lambda x: predict(problem, model, opts.formulation, x)
