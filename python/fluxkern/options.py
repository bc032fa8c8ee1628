"""SolveOptions: the options of a run of :func:`fluxkern.solve`, checked, and how a problem's
defaults and the caller's options merge into them."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from fluxkern import problems
from fluxkern.duals import make_rule
from fluxkern.optim.by_name import check_optimizer_options
from fluxkern.problems.base import Problem
from fluxkern.problems.configure import configure
from fluxkern.settings import MATMUL_PRECISIONS
from fluxkern.training.continuation import check_continuation

__all__ = ["SolveOptions", "effective_options", "make_options", "option_names"]


@dataclass
class SolveOptions:
    """Options of a run (a problem's defaults fill what is not given).

    Attributes:
        epochs: Outer iterations: one primal step and one dual update each.
        optimizer: "auto" (the default: ssbroyden with scale-free stopping tests for a flux
            form of at most 8192 parameters without signed constraints, L-BFGS with them
            otherwise; fluxkern.optim.by_name.choose_optimizer), "lbfgs" (strong Wolfe,
            max_iter 20, history 100), "adam", "ssbfgs" or "ssbroyden" (dense self-scaled
            quasi-Newton, strong Wolfe, max_iter 20; at most 20000 parameters) or
            "gauss_newton" (Levenberg-Marquardt on the generalised Gauss-Newton model, 5
            iterations per epoch; flux formulation only). See fluxkern.optim.
        lr: Learning rate (default 1.0 for L-BFGS and the quasi-Newton ones, 1e-3 for Adam;
            gauss_newton takes none).
        optimizer_options: More keyword arguments of the optimizer's constructor (see
            fluxkern.optim), e.g. {"tolerance_grad": 0.0, "curvature_eps": 1e-12} for lbfgs,
            ssbfgs and ssbroyden; they replace the defaults named above.
        then_optimizer: A second optimizer (same names) that replaces the first after
            switch_epoch epochs, with its default lr, or None for one optimizer throughout
            (e.g. lbfgs, then ssbroyden once L-BFGS has slowed down; the Stokes result in
            README). A resumed run continues with the optimizer its checkpoint was saved with.
        then_optimizer_options: Keyword options of then_optimizer, as optimizer_options.
        switch_epoch: The epochs run with the first optimizer when then_optimizer is set.
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
        time_limit: Seconds of training after which the run ends at the end of the epoch,
            with its results, checkpoint and plots written as at the last epoch (the training
            time before a resume counts), or None for no limit.
        points: Point counts by point-set name ({"interior": 10000}) or by the problem's count
            key ({"n_face": 512}: every set that uses it); see `fluxkern list` and the
            problem's file for the names.
        problem_options: The problem's own options ({"ic_form": "squared"}) and its
            parameters ({"beta": 40.0}) by name.
        continuation: Problem parameters moved from an easy value to their own over the first
            epochs, by name: {"alpha": [0.1, 100]} trains epoch e + 1 on alpha = 0.1 * (own /
            0.1) ** (e / 100) for e < 100, then on the problem's own alpha (geometric; positive
            parameters only; :class:`fluxkern.training.Continuation`). For a layer thinner than
            the point spacing: started where the layer spans many points, every seed learns it
            in the right place. Replaces the problem's own continuation ({} for none); not with
            resample_every or distributed (the problem's own then gives way).
        output_scale: Scales of the network's outputs by name ({"q": 1e-4}): the field is the
            raw output times its scale, so that every raw output is O(1) where the fields
            differ by orders of magnitude (fluxkern.MLP's output_scale); unnamed outputs keep
            1. Residuals, results and plots are in the fields' own units.
        resample_every: Redraw the points every N epochs (:class:`fluxkern.training.Resample`:
            deterministic draws, pointwise multipliers reset at each), or None to keep the first
            draw.
        resample_keep_optimizer: Keep the optimizer's state (L-BFGS pairs, Adam moments)
            across a redraw instead of resetting it.
        resample_method: How the redraws draw the objective's points: "uniform" (the
            problem's own draw) or "rad" (residual-based: from a dense candidate set, with
            probability ~ |residual| / mean + 1; :mod:`fluxkern.training.rad`).
        resample_final: With redraws (flux form): the part of the run, in [0, 1), trained at
            the end on one fixed set of twice the points, not redrawn again, so that the answer
            does not depend on the epoch the run stops at (of the epochs, or of time_limit,
            whichever ends first; :class:`fluxkern.training.FinalPhase`); 0 redraws to the end.
        resample_auto: In a run without redraws (resample_every None) with the unseen-point
            check on: check the answer on fresh points every 20 epochs, and once a term's
            residuals there exceed 10x the training ones, redraw the points by residual every
            20 epochs from there on, keeping the optimizer's state, with the final phase
            (:class:`fluxkern.training.AutoRedraw`). A run never past 10x trains as without
            it.
        out: Output folder, or None for no files.
        resume: Continue from out/checkpoint.pt.
        progress: Show a progress line on stderr.
        unseen_check: Check the network on fresh points, never trained on, every 10 epochs
            (5% of a longer run) and after the last (:class:`fluxkern.training.UnseenCheck`;
            flux form, one process): results.json's "unseen", history.json's
            train_residual, unseen_residual and unseen_max_violation, and a warning when the
            fresh residuals are orders of magnitude above the training ones (the answer is not
            to be trusted between the collocation points).
        plots: Write PNG plots into `out`.
        distributed: Data-parallel over the ranks of a torch.distributed process group (one
            started by torchrun, or by the caller): each rank trains on its shard of the
            points, rank 0 writes the files (fluxkern.distributed; flux formulation only).
    """

    epochs: int = 1000
    optimizer: str = "auto"
    lr: float | None = None
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    then_optimizer: str | None = None
    then_optimizer_options: dict[str, Any] = field(default_factory=dict)
    switch_epoch: int | None = None
    dtype: str = "float64"
    device: str = "cpu"
    backend: str | None = None
    seed: int = 0
    formulation: str = "flux"
    dual: str = "rmsprop"
    dual_options: dict[str, float] = field(default_factory=dict)
    matmul_precision: str = "ieee"
    checkpoint_every: int = 100
    time_limit: float | None = None
    points: dict[str, int] = field(default_factory=dict)
    problem_options: dict[str, Any] = field(default_factory=dict)
    continuation: dict[str, list[Any]] = field(default_factory=dict)
    output_scale: dict[str, float] = field(default_factory=dict)
    resample_every: int | None = None
    resample_keep_optimizer: bool = False
    resample_method: str = "uniform"
    resample_final: float = 0.1
    resample_auto: bool = True
    out: str | None = None
    resume: bool = False
    progress: bool = True
    unseen_check: bool = True
    plots: bool = True
    distributed: bool = False

    CHOICES = {
        "optimizer": ("lbfgs", "adam", "ssbfgs", "ssbroyden", "gauss_newton", "auto"),
        "then_optimizer": (None, "lbfgs", "adam", "ssbfgs", "ssbroyden", "gauss_newton"),
        "dtype": ("float32", "float64"),
        "device": ("cpu", "cuda"),
        "backend": (None, "torch", "cpu", "cuda"),
        "formulation": ("flux", "pinn"),
        "dual": ("rmsprop", "pecann", "capu"),
        "matmul_precision": MATMUL_PRECISIONS,
        "resample_method": ("uniform", "rad"),
    }

    def validate(self) -> None:
        """Raises ValueError naming a bad option and its valid choices."""

        def _whole(value: Any) -> bool:  # an int, not a bool (True is 1 to isinstance)
            return isinstance(value, int) and not isinstance(value, bool)

        def _number(value: Any) -> bool:  # an int or float, not a bool
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        for key, choices in self.CHOICES.items():
            val = getattr(self, key)
            if val not in choices:
                shown = ", ".join(str(c) for c in choices if c is not None)
                raise ValueError(f"{key} must be one of {shown}; got {val!r}")
        if not _whole(self.epochs) or self.epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer; got {self.epochs!r}")
        if not _whole(self.seed) or not 0 <= self.seed <= 2**63 - 1:
            raise ValueError(f"seed must be an integer in [0, 2**63 - 1]; got {self.seed!r}")
        if not _whole(self.checkpoint_every) or self.checkpoint_every < 1:
            raise ValueError(
                f"checkpoint_every must be a positive integer; got {self.checkpoint_every!r}"
            )
        every = self.resample_every
        whole = isinstance(every, int) and not isinstance(every, bool)
        if every is not None and not (whole and every >= 1):
            raise ValueError(f"resample_every must be None or a positive integer; got {every!r}")
        if self.resample_keep_optimizer is True and every is None:
            raise ValueError(
                "resample_keep_optimizer needs resample_every (it keeps the optimizer's state "
                "across a redraw of the points)"
            )
        self._validate_resample()
        lr = self.lr
        if lr is not None and not (_number(lr) and 0 < lr < float("inf")):
            raise ValueError(f"lr must be a positive number; got {lr!r}")
        limit = self.time_limit
        if limit is not None and not (_number(limit) and 0 < limit < float("inf")):
            raise ValueError(f"time_limit must be a positive number of seconds; got {limit!r}")
        self._validate_problem_settings()
        for key in (
            "resample_keep_optimizer",
            "resample_auto",
            "resume",
            "progress",
            "unseen_check",
            "plots",
            "distributed",
        ):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key} must be true or false; got {getattr(self, key)!r}")
        if not isinstance(self.dual_options, dict):
            raise ValueError(f"dual_options must be a dict; got {self.dual_options!r}")
        if self.resume and not self.out:
            raise ValueError("resume needs an output folder (out) holding checkpoint.pt")
        try:
            make_rule(self.dual, **self.dual_options)
        except TypeError as exc:
            raise ValueError(f"dual_options: {exc}") from None
        check_optimizer_options(self.optimizer, self.optimizer_options)
        self._validate_switch()
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for, but no CUDA device is available")
        if self.distributed and self.formulation != "flux":
            raise ValueError("distributed training runs the flux formulation only")
        if self.distributed and "gauss_newton" in (self.optimizer, self.then_optimizer):
            raise ValueError(
                "gauss_newton evaluates the loss itself and does not all-reduce it: not with "
                "distributed training; use lbfgs or ssbroyden"
            )

    def _validate_resample(self) -> None:
        """resample_method and resample_final, and what they need."""
        final = self.resample_final
        number = isinstance(final, (int, float)) and not isinstance(final, bool)
        if not (number and 0 <= final < 1):
            raise ValueError(f"resample_final must be a fraction in [0, 1); got {final!r}")
        if self.resample_method == "rad" and self.resample_every is None:
            raise ValueError(
                "resample_method 'rad' needs resample_every (it decides how each redraw draws)"
            )
        if self.resample_method == "rad" and self.formulation != "flux":
            raise ValueError("resample_method 'rad' weighs the flux form's residuals: flux only")

    def _validate_problem_settings(self) -> None:
        """points: names to non-negative integers; problem_options: a dict by name."""
        if not isinstance(self.points, dict):
            raise ValueError(f"points must be a table of name = count; got {self.points!r}")
        for name, n in self.points.items():
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"points: {name} must be a non-negative integer; got {n!r}")
        if not isinstance(self.problem_options, dict):
            raise ValueError(
                f"problem_options must be a table of name = value; got {self.problem_options!r}"
            )
        if not isinstance(self.continuation, dict):
            raise ValueError(
                f"continuation must be a table of name = [start, epochs]; got {self.continuation!r}"
            )
        if self.continuation and self.resample_every is not None:
            raise ValueError(
                "continuation and resample_every: not together (the continuation rebuilds the "
                "loss on the first draw's points); turn the continuation off (--no-continuation, "
                "or continuation = {} in a config) to redraw"
            )
        if self.continuation and self.distributed:
            raise ValueError("continuation is not supported with distributed training")
        if not isinstance(self.output_scale, dict):
            raise ValueError(
                f"output_scale must be a table of name = scale; got {self.output_scale!r}"
            )
        for name, c in self.output_scale.items():
            number = isinstance(c, (int, float)) and not isinstance(c, bool)
            if not (number and math.isfinite(c) and c != 0):
                raise ValueError(
                    f"output_scale: {name} must be a finite non-zero number; got {c!r}"
                )
        if self.gauss_newton_scaled():
            raise ValueError(
                "output_scale is not supported with gauss_newton (its Jacobian columns are the "
                "unscaled layers'); use lbfgs or ssbroyden, or write the scale into the problem"
            )

    def gauss_newton_scaled(self) -> bool:
        """Whether gauss_newton would train a network with an output scale other than 1."""
        scaled = any(c != 1 for c in self.output_scale.values())
        return scaled and "gauss_newton" in (self.optimizer, self.then_optimizer)

    def _validate_switch(self) -> None:
        """Checks then_optimizer, its options and switch_epoch together."""
        if self.then_optimizer is None:
            if self.switch_epoch is not None or self.then_optimizer_options:
                raise ValueError("switch_epoch and then_optimizer_options need a then_optimizer")
            return
        epoch = self.switch_epoch
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError(
                f"then_optimizer needs switch_epoch, a non-negative integer; got {epoch!r}"
            )
        try:
            check_optimizer_options(self.then_optimizer, self.then_optimizer_options)
        except ValueError as exc:
            raise ValueError(f"then_{exc}") from None


def option_names() -> list[str]:
    """The names of the SolveOptions fields, in declaration order."""
    return [f.name for f in dataclasses.fields(SolveOptions)]


def make_options(problem: Problem, overrides: dict[str, Any]) -> SolveOptions:
    """The problem's defaults (those that are options), then the overrides, validated.

    The overrides' points and problem_options are merged over the problem's; the problem's
    optimizer_options (then_optimizer_options) are dropped when the overrides name another
    optimizer (then_optimizer) without options of their own, and its continuation when they ask
    for redraws (resample_every) or distributed training without a continuation of their own.

    Args:
        problem: The problem.
        overrides: Fields of SolveOptions; None leaves the default (except for backend, where
            None is a value: the fastest backend).

    Returns:
        The validated options.

    Raises:
        ValueError: An unknown or bad option.
    """
    valid = set(option_names())
    merged: dict[str, Any] = {k: v for k, v in problem.defaults.items() if k in valid}
    given = {k: v for k, v in overrides.items() if v is not None or k == "backend"}
    for k in given:
        if k not in valid:
            raise ValueError(f"unknown option {k!r}; valid: {', '.join(sorted(valid))}")
    for first, options in (
        ("optimizer", "optimizer_options"),
        ("then_optimizer", "then_optimizer_options"),
    ):
        # the problem's options of its optimizer do not follow the caller's other optimizer
        if given.get(first, merged.get(first)) != merged.get(first) and options not in given:
            merged.pop(options, None)
    if "continuation" not in given and (given.get("resample_every") or given.get("distributed")):
        # the problem's continuation does not follow the caller's redraws or ranks; a caller's
        # own continuation with them is refused (validate)
        merged.pop("continuation", None)
    for k, v in given.items():
        if k in ("points", "problem_options", "output_scale") and isinstance(v, dict):
            v = {**merged.get(k, {}), **v}  # the caller's counts and options over the problem's
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
        problem = problems.resolve(problem)
    opts = make_options(problem, options)
    # names and kinds
    configured = configure(problem, opts.points, opts.problem_options, option_names())
    check_continuation(configured, opts.continuation)
    if opts.formulation == "pinn" and not problem.has_pinn():
        raise ValueError(f"problem {problem.name!r} has no PINN form")
    outs = problem.output_names if opts.formulation == "flux" else problem.pinn_output_names
    unknown = sorted(set(opts.output_scale) - set(outs))
    if unknown:
        raise ValueError(
            f"output_scale: {problem.name} ({opts.formulation}) has no output {unknown[0]!r}; "
            f"its outputs: {', '.join(outs)}"
        )
    return opts
