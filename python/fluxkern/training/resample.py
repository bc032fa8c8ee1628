"""Redrawing the collocation points every N epochs: the :class:`Resample` callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fluxkern.geometry import Resampler
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.training.callbacks import Callback
from fluxkern.training.history import EpochRecord
from fluxkern.training.trainer import Trainer

__all__ = ["Resample"]


class Resample(Callback):
    """Redraws the points every `every` epochs, on the schedule of a
    :class:`fluxkern.geometry.Resampler`: after epoch e (e divisible by `every`) the loss uses
    the draw of seed ``trainer.seed + e // every``, so a run is deterministic and a resumed one
    continues on the draw it had (on_start redraws it, keeping the restored multipliers).

    With an AugmentedLagrangian the new blocks replace the old ones through
    :meth:`AugmentedLagrangian.set_terms`: global multipliers carry over; pointwise ones (the
    default of a Constraint) are tied to the old points, so they are reset to their initial
    values (pointwise="reset") or resampling is refused with a ValueError (pointwise="error").
    With any other loss (e.g. a PINN loss) the sampler's new loss replaces the trainer's.

    Args:
        every: Epochs per draw, >= 1.
        sampler: Called as sampler(seed=...) and returning the new blocks (flux form) or the
            new loss callable. None draws through the trainer's problem: its
            flux_terms(seed, dtype, device), or pinn_loss(model, seed, dtype, device).
        pointwise: "reset" or "error": what happens to pointwise multipliers.
        reset_optimizer: Clear the optimizer's state (L-BFGS's curvature pairs, Adam's moments),
            which describes the old loss, at each redraw.

    Attributes:
        resampler: The schedule (set by on_start); resampler.num_draws counts the draws.
    """

    def __init__(
        self,
        every: int,
        sampler: Callable[..., Any] | None = None,
        *,
        pointwise: str = "reset",
        reset_optimizer: bool = True,
    ) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer; got {every!r}")
        if pointwise not in ("reset", "error"):
            raise ValueError(f"pointwise must be 'reset' or 'error'; got {pointwise!r}")
        self.every, self.sampler = every, sampler
        self.pointwise, self.reset_optimizer = pointwise, reset_optimizer
        self.resampler: Resampler | None = None

    def _default_sampler(self, trainer: Trainer) -> Callable[..., Any]:
        problem = trainer.problem
        if problem is None:
            raise ValueError("Resample needs a sampler, or a trainer made with a problem")
        param = trainer.params[0]
        dtype, device = param.dtype, param.device
        if trainer.al is not None:
            return lambda seed: problem.flux_terms(seed, dtype, device)
        return lambda seed: problem.pinn_loss(trainer.model, seed, dtype, device)

    def on_start(self, trainer: Trainer) -> None:
        sampler = self.sampler or self._default_sampler(trainer)
        self.resampler = Resampler(sampler, self.every, seed=trainer.seed)
        if trainer.epoch >= self.every:  # a resumed run: the draw it trained on
            # At a redraw epoch the checkpoint may predate the redraw (Checkpoint ran first):
            # redraw as the run did then; the resets are idempotent if it did not.
            at_redraw = self.resampler.redraws_at(trainer.epoch)
            self._redraw(
                trainer,
                trainer.epoch,
                reset_optimizer=at_redraw and self.reset_optimizer,
                pointwise=self.pointwise if at_redraw else "keep",
            )

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        assert self.resampler is not None
        if self.resampler.redraws_at(record.epoch):
            self._redraw(trainer, record.epoch, self.reset_optimizer, self.pointwise)
        return None

    def _redraw(self, trainer: Trainer, epoch: int, reset_optimizer: bool, pointwise: str) -> None:
        assert self.resampler is not None
        new = self.resampler.points(epoch)
        if isinstance(trainer.al, AugmentedLagrangian):
            trainer.al.set_terms(new, pointwise=pointwise)
        else:
            trainer.set_loss(new)
        if reset_optimizer:
            trainer.optimizer.state.clear()
