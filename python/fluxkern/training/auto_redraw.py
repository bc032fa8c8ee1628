"""Redraws turned on when the answer is not to be trusted: the :class:`AutoRedraw` callback.

A run with fixed points can converge to an answer that fits its points and not the equation
between them (a front, a layer). The unseen-point check sees it: the residuals on fresh points
grow above the training ones as the run over-fits. AutoRedraw runs that check every `every`
epochs of a run without redraws, and at the first check where some term's RMS residual on the
fresh points (but the worst 0.5%) is more than `factor` (10) times its training RMS and above
`floor` (1e-5), it turns residual-based redraws on from that epoch. 10 is a tenth of the
warning's factor (:class:`fluxkern.training.UnseenReport`): on the moving front of
examples/viscous_front.py the ratio grew steadily, 1x after 20 epochs, 4x after 80, 10x after
120 and 100x only after 380, while the error stopped improving after about 80 epochs; resolved
runs stay within 0.5-4x. It turns on a :class:`fluxkern.training.Resample` with method "rad",
every `every` epochs, the optimizer's state kept, and the final phase on a fixed denser set. A
run the check never flags trains exactly as without it (the check changes nothing).
"""

from __future__ import annotations

from typing import Any

from fluxkern.training.callbacks import Callback
from fluxkern.training.continuation import continuing
from fluxkern.training.final_phase import FinalPhase
from fluxkern.training.history import EpochRecord
from fluxkern.training.resample import Resample
from fluxkern.training.trainer import Trainer
from fluxkern.training.unseen import UnseenCheck

__all__ = ["FACTOR", "FLOOR", "STATE_KEY", "AutoRedraw"]

# The key of Trainer.extra_state (kept in checkpoints): {"from": the epoch the redraws began}.
STATE_KEY = "auto_redraw"
# The trigger (see the module's doc): fresh RMS > FACTOR x training RMS and > FLOOR.
FACTOR = 10.0
FLOOR = 1e-5


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
        factor: The trigger's factor (fresh over training RMS).
        floor: The trigger's floor (fresh RMS, in the residual's units).

    Attributes:
        started_at: The epoch after which the redraws began, or None.
        resample: The redraws once on, or None.
    """

    def __init__(
        self,
        check: UnseenCheck | None = None,
        every: int = 20,
        final: FinalPhase | None = None,
        *,
        factor: float = FACTOR,
        floor: float = FLOOR,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer; got {every!r}")
        self.check, self.every, self.final = check, every, final
        self.factor, self.floor = float(factor), float(floor)
        self.started_at: int | None = None
        self.resample: Resample | None = None

    @property
    def redraws_points(self) -> bool:
        """Whether the redraws have begun (UnseenCheck's warning then leaves that advice out)."""
        return self.resample is not None

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
        if record.epoch % self.every == 0 and not continuing(trainer):
            self._check(trainer)  # (not while the loss is not yet the problem's own)
        return None

    def _check(self, trainer: Trainer) -> None:
        assert self.check is not None
        report = self.check.report
        if report is None or report.epoch != trainer.epoch:
            report = self.check.check(trainer)
        if report is None or not any(
            t.unseen_rms_bulk > self.floor and t.unseen_rms_bulk > self.factor * t.train_rms
            for t in report.terms
        ):
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
