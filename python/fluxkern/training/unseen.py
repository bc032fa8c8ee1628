"""The unseen-point check: the residuals and constraint violations of the trained network on fresh
points that the run never trained on, beside the training ones (:class:`UnseenCheck`).

With fixed collocation points the flux form can drive the loss and the constraint violation to
tiny values while the answer is wrong between the points: a flux output (q standing for u_x)
may deviate from the derivative it stands for wherever no point watches it, most at a front or a
layer. The training numbers cannot show this; the same residuals on another draw of the points
can. The check redraws every block's points with other seeds (the problem's own point sets:
``problem.flux_terms(seed, dtype, device)``, as :class:`fluxkern.training.Resample` does) and
evaluates the residuals there, without gradients, every few epochs and at the end of the run.

Example:
    >>> check = UnseenCheck()  # every 10 epochs (5% of a longer run) and after the last
    >>> trainer.fit(300, [check, Progress()])
    >>> check.report.residual_ratio  # unseen RMS objective residual / training one
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from fluxkern.blocks import Block, BoundBlock
from fluxkern.nn import mlp_spec
from fluxkern.training.callbacks import Callback, Progress
from fluxkern.training.continuation import continuing
from fluxkern.training.history import EpochRecord
from fluxkern.training.trainer import Trainer
from fluxkern.training.unseen_eval import (
    _fresh_blocks,
    _own_rng,
    _Sizes,
    check_trained,
    check_unseen,
    redrawable,
    term_stats,
)
from fluxkern.training.unseen_rules import _DRAW_STRIDE as _DRAW_STRIDE
from fluxkern.training.unseen_rules import (
    DEFAULT_CHECKS,
    DEFAULT_EVERY,
    DEFAULT_FACTOR,
    DEFAULT_FLOOR,
    DEFAULT_MAX_POINTS,
    DEFAULT_MIN_POINTS,
    DEFAULT_TRIM,
    HISTORY_KEYS,
    UNSEEN_SEED_OFFSET,
    TermCheck,
    UnseenPointsWarning,
    UnseenReport,
)
from fluxkern.training.unseen_rules import DEFAULT_MAX_DRAWS as DEFAULT_MAX_DRAWS
from fluxkern.training.unseen_rules import _ratio as _ratio
from fluxkern.training.unseen_rules import _times as _times

# Defined in this module before its split and still importable from it, though not in __all__
# (imported above as `X as X`): _DRAW_STRIDE, DEFAULT_MAX_DRAWS, _ratio, _times.
__all__ = [
    "DEFAULT_CHECKS",
    "DEFAULT_EVERY",
    "DEFAULT_FACTOR",
    "DEFAULT_FLOOR",
    "DEFAULT_MAX_POINTS",
    "DEFAULT_MIN_POINTS",
    "DEFAULT_TRIM",
    "HISTORY_KEYS",
    "UNSEEN_SEED_OFFSET",
    "TermCheck",
    "UnseenCheck",
    "UnseenPointsWarning",
    "UnseenReport",
    "check_trained",
    "check_unseen",
    "redrawable",
    "term_stats",
]


# ---------------------------------------------------------------------------------- callback
class UnseenCheck(Callback):
    """Checks the network on fresh points every `every` epochs and after the last one; warns at
    the end of the run when the fresh residuals are orders of magnitude above the training ones
    (the rule: :class:`UnseenReport`).

    The fresh points are the problem's own point sets drawn with seed ``trainer.seed +
    UNSEEN_SEED_OFFSET`` (once, at the start): at least `min_points` (256) per block, by more
    draws of a small set (at most 64 draws), and at most `max_points` (4096). They are the same
    at every check and never among the training points, also with Resample. A declared
    problem's grid point sets are drawn as Sobol points instead (:func:`redrawable`); blocks
    whose points still do not change with the seed (fixed tensors) are left out and named in
    the report. Each check evaluates the network's jet once per distinct point set on the training
    and on the fresh points, without gradients: it reads the parameters and the training
    blocks and changes nothing (not the parameters, the optimizer, the multipliers nor the
    global random state), so a run is bitwise the same with or without it.

    Each check notes "train_residual", "unseen_residual" (RMS objective residuals; unseen: but
    the worst `trim` of the fresh points) and "unseen_max_violation" (max |C| on the fresh
    points) in the trainer's history at its epoch (history.json keys; null at the other
    epochs); the progress line shows the latest ones. At the end of the run an untrustworthy
    report gives an :class:`UnseenPointsWarning` (a UserWarning) and a line on stderr through
    `display`. Flux form only: with another loss (PINN) it does nothing.

    Args:
        every: Epochs between checks (epochs divisible by it), or None: every 10 epochs, or
            every 5% of a run of more than 200 epochs (max(10, ceil(epochs / 20)) of the run's
            target). The last epoch is always checked.
        sampler: Called as sampler(seed=...) and returning the fresh blocks; None draws through
            the trainer's problem: its flux_terms(seed, dtype, device).
        seed_offset: Added to the run's seed for the fresh draw.
        min_points: Fresh points per block wanted (None: one draw).
        max_points: Fresh points per block at most (the first ones; None: no cap).
        factor, floor, trim: The rule (see UnseenReport).
        display: The run's Progress display, for the warning's line on stderr (None: the
            UserWarning only).
        warn: False records the verdict without warning.

    Attributes:
        report: The latest UnseenReport, or None.
        every_epochs: The schedule in use (set by on_start).
        skipped: Why the check does not run (a PINN loss, no point set to redraw), or None.
        seed: The fresh draw's seed (set by on_start).
    """

    def __init__(
        self,
        every: int | None = None,
        *,
        sampler: Callable[..., Sequence[Block]] | None = None,
        seed_offset: int = UNSEEN_SEED_OFFSET,
        min_points: int | None = DEFAULT_MIN_POINTS,
        max_points: int | None = DEFAULT_MAX_POINTS,
        factor: float = DEFAULT_FACTOR,
        floor: float = DEFAULT_FLOOR,
        trim: float = DEFAULT_TRIM,
        display: Progress | None = None,
        warn: bool = True,
    ) -> None:
        if every is not None and (
            isinstance(every, bool) or not isinstance(every, int) or every < 1
        ):
            raise ValueError(f"every must be a positive integer or None; got {every!r}")
        for what, n in (("min_points", min_points), ("max_points", max_points)):
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise ValueError(f"{what} must be a positive integer or None; got {n!r}")
        if not (isinstance(factor, (int, float)) and 1 <= factor < math.inf):
            raise ValueError(f"factor must be a finite number >= 1; got {factor!r}")
        if not (isinstance(floor, (int, float)) and 0 <= floor < math.inf):
            raise ValueError(f"floor must be a finite number >= 0; got {floor!r}")
        if not (isinstance(trim, (int, float)) and 0 <= trim < 0.5):
            raise ValueError(f"trim must be a fraction in [0, 0.5); got {trim!r}")
        self.every, self.sampler, self.seed_offset = every, sampler, seed_offset
        self.sizes = _Sizes(min_points, max_points)
        self.factor, self.floor, self.trim = float(factor), float(floor), float(trim)
        self.display, self.warn = display, warn
        self.report: UnseenReport | None = None
        self.every_epochs = every or 1
        self.skipped: str | None = None
        self.seed: int | None = None
        self._fresh: list[BoundBlock] = []
        self._not_redrawn: tuple[str, ...] = ()
        self._name = ""

    # -------------------------------------------------------------- set-up
    def _drawer(self, trainer: Trainer) -> Callable[[int], Sequence[Block]]:
        if self.sampler is not None:
            sampler = self.sampler
            return lambda seed: list(sampler(seed=seed))
        if trainer.problem is None:
            raise ValueError("UnseenCheck needs a sampler, or a trainer made with a problem")
        problem = redrawable(trainer.problem)
        param = trainer.params[0]
        return lambda seed: list(problem.flux_terms(seed, param.dtype, param.device))

    def on_start(self, trainer: Trainer) -> None:
        self.report, self.skipped, self._fresh, self._not_redrawn = None, None, [], ()
        self._name = trainer.name
        target = trainer.target_epochs
        self.every_epochs = self.every or max(DEFAULT_EVERY, math.ceil(target / DEFAULT_CHECKS))
        al = trainer.al
        if al is None:
            self.skipped = "the unseen-point check is for the flux form"
            return
        self.seed = trainer.seed + self.seed_offset
        param = trainer.params[0]
        spec = mlp_spec(trainer.model)
        how = (spec.weights[0].shape[1], spec.weights[-1].shape[0], param.dtype, param.device)
        draw = self._drawer(trainer)
        try:
            with _own_rng(param.device):
                self._fresh, self._not_redrawn = _fresh_blocks(
                    draw, self.seed, al.bound, self.sizes, how
                )
        except (ValueError, TypeError, KeyError, RuntimeError) as exc:
            # a diagnostic must not end the run: say why it cannot check, and train on
            self.skipped = f"the fresh points could not be drawn ({exc})"
            warnings.warn(f"{self._name}: unseen-point check off: {self.skipped}", stacklevel=2)
            return
        if not self._fresh:
            self.skipped = "no point set changes with the seed (fixed points): nothing unseen"

    # -------------------------------------------------------------- checks
    def check(self, trainer: Trainer, epoch: int | None = None) -> UnseenReport | None:
        """Runs the check now and notes it in the history at `epoch` (default: the trainer's
        epochs completed); None when the check does not run (see :attr:`skipped`)."""
        if self.skipped is not None or trainer.al is None or not self._fresh:
            return None
        epoch = trainer.epoch if epoch is None else epoch
        report = check_unseen(
            trainer.model,
            list(trainer.al.bound.values()),
            self._fresh,
            epoch=epoch,
            backend=trainer.al.backend,
            factor=self.factor,
            floor=self.floor,
            trim=self.trim,
            not_redrawn=self._not_redrawn,
        )
        self.report = report
        if epoch >= 1:
            trainer.history.note(
                epoch,
                train_residual=report.train_residual,
                unseen_residual=report.unseen_residual,
                unseen_max_violation=report.unseen_max_violation,
            )
        return report

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        if continuing(trainer):  # trained on another parameter value than the fresh points'
            return None
        if record.epoch % self.every_epochs == 0 or record.epoch == trainer.target_epochs:
            self.check(trainer, record.epoch)
        return None

    def on_end(self, trainer: Trainer) -> None:
        if continuing(trainer) and self.skipped is None:
            self.skipped = "the run ended during the parameter continuation"
            return
        if self.report is None or self.report.epoch != trainer.epoch:
            self.check(trainer)  # a run stopped early, or one with no epoch left to run
        report = self.report
        if report is None or not report.untrustworthy or not self.warn:
            return
        redrawn = any(getattr(cb, "redraws_points", False) for cb in trainer.callbacks)
        msg = report.message(self._name, redrawn)
        if self.display is not None:
            self.display.note(f"warning: {msg}")
        warnings.warn(msg, UnseenPointsWarning, stacklevel=2)

    # -------------------------------------------------------------- results
    def results(self) -> dict[str, Any] | None:
        """What results.json holds under "unseen": the last report's figures
        (:meth:`UnseenReport.to_dict`) with the fresh draw's seed and the schedule, or
        {"skipped": why}; None before a run."""
        if self.skipped is not None:
            return {"skipped": self.skipped}
        if self.report is None:
            return None
        return {**self.report.to_dict(), "seed": self.seed, "every": self.every_epochs}
