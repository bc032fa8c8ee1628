"""SwitchOptimizer: one optimizer for the first epochs, another for the rest.

A common recipe for PINN-type losses: L-BFGS (cheap iterations) until the error stops falling
quickly, then a dense self-scaled quasi-Newton method (fluxkern.optim.SSBroyden) that goes on
converging where L-BFGS stalls.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fluxkern.training.callbacks import Callback
from fluxkern.training.history import EpochRecord
from fluxkern.training.trainer import Trainer

__all__ = ["SwitchOptimizer"]


class SwitchOptimizer(Callback):
    """Replaces the trainer's optimizer once `epoch` epochs are complete.

    The switch happens after that epoch (and after this callback's predecessors in the
    callback list ran), or at the start of a fit() that begins past it without a switch
    recorded (a resume from a checkpoint written before the switch). It is recorded in
    :attr:`Trainer.switched_at`, which checkpoints keep.

    Args:
        epoch: The epochs to run with the first optimizer (>= 0; 0 switches at once).
        make: Builds the new optimizer from the trainer (e.g. over trainer.params and
            trainer.loss_fn).

    Example:
        >>> from fluxkern.optim import SSBroyden
        >>> switch = SwitchOptimizer(1200, lambda t: SSBroyden(t.params, tolerance_grad=0.0))
        >>> trainer.fit(3000, [switch])
    """

    def __init__(self, epoch: int, make: Callable[[Trainer], torch.optim.Optimizer]) -> None:
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer; got {epoch!r}")
        self.epoch, self.make = epoch, make

    def _maybe_switch(self, trainer: Trainer) -> None:
        if trainer.switched_at is None and trainer.epoch >= self.epoch:
            trainer.set_optimizer(self.make(trainer))

    def on_start(self, trainer: Trainer) -> None:
        self._maybe_switch(trainer)

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        self._maybe_switch(trainer)
        return None
