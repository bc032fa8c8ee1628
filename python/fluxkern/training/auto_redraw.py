"""Redraws turned on when the answer is not to be trusted: the :class:`AutoRedraw` callback.

A run with fixed points can converge to an answer that fits its points and not the equation
between them (a front, a layer). The unseen-point check sees it: the residuals on fresh points
grow orders of magnitude above the training ones. AutoRedraw runs that check every `every`
epochs of a run without redraws, and at the first check that finds the answer untrustworthy
(the rule of :class:`fluxkern.training.UnseenReport`) it turns residual-based redraws on from
that epoch: a :class:`fluxkern.training.Resample` with method "rad", every `every` epochs, the
optimizer's state kept, and the final phase on a fixed denser set. A run the check never flags
trains exactly as without it (the check changes nothing).
"""

from __future__ import annotations

from typing import Any

from fluxkern.training.callbacks import Callback
from fluxkern.training.final_phase import FinalPhase
from fluxkern.training.history import EpochRecord
from fluxkern.training.resample import Resample
from fluxkern.training.trainer import Trainer
from fluxkern.training.unseen import UnseenCheck

__all__ = ["STATE_KEY", "AutoRedraw"]

# The key of Trainer.extra_state (kept in checkpoints): {"from": the epoch the redraws began}.
STATE_KEY = "auto_redraw"


class AutoRedraw(Callback):
    """Checks the run on fresh points every `every` epochs until the answer is flagged, then
    redraws the points by residual from there on.

    Put it after `check` in the callbacks (it reads the fresh points `check` drew at its start).

    Args:
        check: The run's unseen-point check (its fresh points and rule; its report and the
            history notes are updated by the checks made here too), or None: one of its own
            (UnseenCheck(warn=False)), started by on_start.
        every: Epochs between checks, and between redraws once they are on.
        final: The final phase of the redraws, or None.

    Attributes:
        started_at: The epoch after which the redraws began, or None.
        resample: The redraws once on, or None.
    """

    def __init__(
        self, check: UnseenCheck | None = None, every: int = 20, final: FinalPhase | None = None
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer; got {every!r}")
        self.check, self.every, self.final = check, every, final
        self.started_at: int | None = None
        self.resample: Resample | None = None

    def _resample(self) -> Resample:
        return Resample(self.every, reset_optimizer=False, method="rad", final=self.final)

    def before_load(self, trainer: Trainer, extra: dict[str, Any]) -> None:
        """Before a checkpoint's state is loaded (a resume): a run whose redraws were on gets
        their final phase's set first, as :meth:`Resample.before_load`."""
        if (extra.get(STATE_KEY) or {}).get("from") is not None:
            self._resample().before_load(trainer, extra)

    def on_start(self, trainer: Trainer) -> None:
        self.started_at, self.resample = None, None
        if self.check is None:
            self.check = UnseenCheck(warn=False)
            self.check.on_start(trainer)
        began = (trainer.extra_state.get(STATE_KEY) or {}).get("from")
        if began is not None and began < trainer.epoch:  # a resumed run with redraws on
            self.started_at, self.resample = began, self._resample()
            self.resample.on_start(trainer)
        elif trainer.epoch > 0 and trainer.epoch % self.every == 0:
            self._check(trainer)  # the check the run made after this checkpoint was written

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        if self.resample is not None:
            return self.resample.on_epoch_end(trainer, record)
        if record.epoch % self.every == 0:
            self._check(trainer)
        return None

    def _check(self, trainer: Trainer) -> None:
        assert self.check is not None
        report = self.check.report
        if report is None or report.epoch != trainer.epoch:
            report = self.check.check(trainer)
        if report is None or not report.untrustworthy:
            return
        self.started_at, self.resample = trainer.epoch, self._resample()
        self.resample.start(trainer)
        trainer.extra_state[STATE_KEY] = {"from": trainer.epoch}
        ratio = report.residual_ratio
        shown = f"{ratio:.0f}x" if ratio is not None else "far above"
        note = (
            f"residuals on fresh points {shown} the training ones after epoch {trainer.epoch}: "
            f"the points are redrawn by residual every {self.every} epochs from now on "
            "(resample_auto)"
        )
        if self.check.display is not None:
            self.check.display.note(note)
