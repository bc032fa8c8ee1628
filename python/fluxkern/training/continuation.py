"""Parameter continuation: a problem parameter moved from an easy value to its own over the first
epochs of a run (the :class:`Continuation` callback).

A layer far thinner than the collocation spacing (convection_diffusion's 1e-6-wide boundary
layer on a grid of spacing 4.9e-4) is invisible to the points: a jump between any two
neighbouring points satisfies every residual, and which one a run finds is the initial
network's luck. With the diffusion coefficient started at 0.1, where the layer spans many
points, every seed first learns the layer at the right wall; shrinking the coefficient
geometrically to its own value over the first epochs keeps it there.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from fluxkern.problems.base import Problem
from fluxkern.problems.configure import configure
from fluxkern.training.callbacks import Callback, Progress
from fluxkern.training.history import EpochRecord
from fluxkern.training.trainer import Trainer

__all__ = ["STATE_KEY", "Continuation", "check_continuation", "continuing"]

# Trainer.extra_state key: the epoch through which training ran on continued parameters.
STATE_KEY = "continuation"


def check_continuation(problem: Problem, schedule: Mapping[str, Any]) -> None:
    """Raises ValueError unless every entry names a positive numeric parameter of the problem
    and gives [start, epochs] with a positive finite start and a positive whole epochs.

    Args:
        problem: The problem (its ``params``: name to value).
        schedule: Parameter name to [start, epochs].
    """
    params = getattr(problem, "params", {}) or {}
    for name, entry in schedule.items():
        if name not in params:
            valid = ", ".join(sorted(params)) or "none"
            raise ValueError(
                f"continuation: {problem.name} has no parameter {name!r}; its parameters: {valid}"
            )
        own = params[name]
        if isinstance(own, bool) or not isinstance(own, (int, float)) or not own > 0:
            raise ValueError(
                f"continuation: {name} is {own!r}; only a positive number can be continued "
                "(geometrically from its start)"
            )
        ok = isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == 2
        start, epochs = (entry[0], entry[1]) if ok else (None, None)
        number = isinstance(start, (int, float)) and not isinstance(start, bool)
        whole = isinstance(epochs, int) and not isinstance(epochs, bool)
        if not (number and math.isfinite(start) and start > 0 and whole and epochs >= 1):
            raise ValueError(
                f"continuation: {name} takes [start, epochs], a positive start value and a "
                f"positive whole number of epochs (e.g. [0.1, 100]); got {entry!r}"
            )


def continuing(trainer: Trainer) -> bool:
    """Whether the trainer's last epoch trained on a continued (not yet final) parameter value:
    the residuals it trained on are then not the problem's own, and checks against the
    problem's own (the unseen-point check) wait."""
    until = (trainer.extra_state.get(STATE_KEY) or {}).get("until", 0)
    return 0 < trainer.epoch <= until


class Continuation(Callback):
    """Moves problem parameters from a start value to the problem's own, geometrically, over
    each one's first epochs: epoch e + 1 trains on start * (own / start) ** (e / epochs) for
    e < epochs, then on the problem itself. The points stay the same (the loss's blocks are
    rebuilt from the problem at the run's seed, pointwise multipliers kept), and so does the
    optimizer's state. Deterministic in the epoch, so a resumed run continues where it was.

    Not with redrawn points (the blocks would return to the first draw): fluxkern.solve refuses
    resample_every with a continuation, and the automatic redraws, which the unseen-point check
    starts, wait for its end as that check does.

    Args:
        problem: The problem with its own parameter values (the trainer's problem).
        schedule: Parameter name to [start, epochs] (:func:`check_continuation`).
        display: Where it says what it does (a :class:`fluxkern.training.Progress`, whose
            note() writes a line on stderr), or None.
    """

    def __init__(
        self,
        problem: Problem,
        schedule: Mapping[str, Sequence[Any]],
        display: Progress | None = None,
    ) -> None:
        check_continuation(problem, schedule)
        self.problem = problem
        self.schedule = {k: (float(v[0]), int(v[1])) for k, v in schedule.items()}
        self.until = max((n for _, n in self.schedule.values()), default=0)
        self.values: dict[str, float] = {}  # the values the loss now trains on
        self.display = display

    def values_at(self, epoch: int) -> dict[str, float]:
        """The parameter values epoch `epoch` + 1 trains on (the continued ones only)."""
        out = {}
        for name, (start, n) in self.schedule.items():
            own = float(self.problem.params[name])
            if epoch < n:
                out[name] = start * (own / start) ** (epoch / n)
        return out

    def on_start(self, trainer: Trainer) -> None:
        trainer.extra_state[STATE_KEY] = {"until": self.until}
        self.values = {}
        if trainer.epoch < self.until:
            self._apply(trainer, trainer.epoch)
            self._note(
                "continuation: "
                + ", ".join(
                    f"{k} from {s:g} to {self.problem.params[k]:g} over epochs 1-{n}"
                    for k, (s, n) in self.schedule.items()
                )
                + "; the unseen-point check waits for its end"
            )

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        if record.epoch <= self.until:
            self._apply(trainer, record.epoch)
            if record.epoch == self.until:
                self._note(
                    f"continuation done after epoch {record.epoch}: the problem's own values"
                )
        return None

    def _note(self, text: str) -> None:
        if self.display is not None:
            self.display.note(text)

    def on_end(self, trainer: Trainer) -> None:
        if trainer.epoch < self.until:
            shown = ", ".join(f"{k} = {v:.3g}" for k, v in self.values.items())
            warnings.warn(
                f"{trainer.name}: the run ended at epoch {trainer.epoch}, during the "
                f"continuation (to epoch {self.until}): the network was trained on {shown}, "
                "not on the problem's own values; run more epochs (or a longer time limit)",
                stacklevel=2,
            )

    def _apply(self, trainer: Trainer, epoch: int) -> None:
        values = self.values_at(epoch)
        if values == self.values:
            return
        problem = configure(self.problem, {}, values, ()) if values else self.problem
        param = trainer.params[0]
        if trainer.al is not None:
            blocks = problem.flux_terms(trainer.seed, param.dtype, param.device)
            trainer.al.set_terms(blocks, pointwise="keep")
        else:
            trainer.set_loss(
                problem.pinn_loss(trainer.model, trainer.seed, param.dtype, param.device)
            )
        self.values = values
