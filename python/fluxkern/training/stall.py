"""The stall check: a run whose optimizer stopped on its own tests while the loss barely moved
(:class:`StallCheck`).

L-BFGS's stopping tests are absolute by default (max |gradient| <= 1e-7, a loss or step change
<= 1e-9). A problem whose residuals are small in absolute terms (a small diffusivity, a source of
size 1e-3, unscaled fluxes) meets them at the start: every epoch then ends after one evaluation,
the loss looks small, the constraints look met, and the answer can be wholly wrong. Measured on
-(k u')' = f with k = 1e-4 (u = sin(pi x) + 0.2 sin(4 pi x), flux q = -k u', lbfgs with its
default tests, 300 epochs): loss 4.0e-6 -> 2.6e-6, max |C| 2.7e-7, 0.6 s for the whole run and
u's relative error 1.00; the same problem with ``--optimizer auto`` (the scale-free tests) reaches
2.5e-6. Nothing in the training numbers says so, so the run says it: after the run, when the last
epochs each ended after at most one evaluation while the loss fell by less than a factor
:data:`MIN_DROP` from the first epoch, a :class:`StalledRunWarning` names the fix.

A run that converged (loss down by orders of magnitude, then one evaluation per epoch at
round-off) is quiet; so is one too short to tell (< :data:`MIN_EPOCHS` epochs).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

from fluxkern.training.callbacks import Callback, Progress
from fluxkern.training.trainer import Trainer

__all__ = ["MIN_DROP", "MIN_EPOCHS", "StallCheck", "StallReport", "StalledRunWarning", "stalled"]

# A run must have made at least this many epochs (in this fit) before it is judged.
MIN_EPOCHS = 10
# The loss must fall by at least this factor from the first epoch. The committed runs'
# (results/*/flux/history.json) fell by 6.9e5 (convection_diffusion) to 5.1e13 over the run, but
# convection_diffusion's only 1.1x in its first 500 epochs: the drop alone cannot tell, so a run
# is judged only when its optimizer also stopped on its own tests (one evaluation an epoch) for
# at least the second half of it. The stalled case above fell 1.6x.
MIN_DROP = 10.0


class StalledRunWarning(UserWarning):
    """The optimizer stopped on its own tests every epoch while the loss barely fell."""


@dataclass(frozen=True)
class StallReport:
    """What the check found.

    Attributes:
        epochs: Epochs of the run judged (this fit).
        idle_epochs: The last epochs in a row that ended after at most one evaluation.
        first_loss: The loss after the fit's first epoch.
        last_loss: The loss after its last epoch.
    """

    epochs: int
    idle_epochs: int
    first_loss: float
    last_loss: float

    @property
    def drop(self) -> float:
        """first_loss / last_loss (inf when the last loss is 0)."""
        return self.first_loss / self.last_loss if self.last_loss > 0 else math.inf

    @property
    def stalled(self) -> bool:
        """Whether the run stalled: at least half of it (and MIN_EPOCHS) idle at the end, and
        the loss down by less than MIN_DROP."""
        half = max(MIN_EPOCHS // 2, self.epochs // 2)
        return self.epochs >= MIN_EPOCHS and self.idle_epochs >= half and self.drop < MIN_DROP

    def message(self, name: str = "") -> str:
        """One line: what happened and what to change."""
        head = f"{name}: " if name else ""
        return (
            f"{head}the optimizer met its stopping tests after one evaluation in each of the "
            f"last {self.idle_epochs} of {self.epochs} epochs while the loss fell only "
            f"{self.drop:.1f}x ({self.first_loss:.2e} -> {self.last_loss:.2e}): the answer is "
            "probably far from converged; its tests are absolute and this problem's residuals "
            "are small: use --optimizer auto, or the scale-free tests (optimizer_options "
            "tolerance_grad = 0, tolerance_change = 0, curvature_eps = 1e-12), or scale the "
            "equations and outputs to O(1)"
        )

    def to_dict(self) -> dict[str, Any]:
        """What results.json holds under "stall"."""
        return {
            "epochs": self.epochs,
            "idle_epochs": self.idle_epochs,
            "first_loss": self.first_loss,
            "last_loss": self.last_loss,
            "stalled": self.stalled,
        }


def stalled(losses: list[float], evals: list[int]) -> StallReport | None:
    """The check on one fit's losses and evaluations per epoch (in order); None when there
    is nothing to judge (no epoch, or the evaluations are not known: 0)."""
    if not losses or len(losses) != len(evals) or not all(e > 0 for e in evals):
        return None
    idle = 0
    for e in reversed(evals):
        if e > 1:
            break
        idle += 1
    return StallReport(len(losses), idle, float(losses[0]), float(losses[-1]))


class StallCheck(Callback):
    """After the run: warns (:class:`StalledRunWarning`, and a line through `display`) when
    the optimizer stopped on its own tests every epoch while the loss barely moved
    (:func:`stalled`); the finding is in :attr:`report`.

    Only optimizers that may evaluate the loss more than once a step (max_iter > 1: lbfgs,
    ssbroyden, ssbfgs) are judged; Adam evaluates once a step by design.

    Args:
        display: The progress line, to show the warning on (None: the warning only).
    """

    def __init__(self, display: Progress | None = None) -> None:
        self.display = display
        self.report: StallReport | None = None
        self._first = 0

    def on_start(self, trainer: Trainer) -> None:
        self.report, self._first = None, len(trainer.history)

    def on_end(self, trainer: Trainer) -> None:
        groups = trainer.optimizer.param_groups
        if not any(g.get("max_iter", 1) > 1 for g in groups):
            return
        records = trainer.history.records[self._first :]
        losses = [r.loss for r in records]
        if not all(math.isfinite(v) for v in losses):
            return
        self.report = stalled(losses, [r.evals for r in records])
        if self.report is None or not self.report.stalled:
            return
        msg = self.report.message(trainer.name)
        if self.display is not None:
            self.display.note(f"warning: {msg}")
        warnings.warn(msg, StalledRunWarning, stacklevel=2)

    def results(self) -> dict[str, Any] | None:
        """What results.json holds under "stall" (None before a run or with nothing judged)."""
        return self.report.to_dict() if self.report is not None else None
