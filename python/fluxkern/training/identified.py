"""The identified values of a run's unknowns (fluxkern.unknown), noted in the history each epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from fluxkern.training.callbacks import Callback, unknowns_text
from fluxkern.training.history import EpochRecord

if TYPE_CHECKING:
    from fluxkern.training.trainer import Trainer

__all__ = ["NOTE_PREFIX", "TrackUnknowns", "unknowns_report", "unknowns_text"]

#: history.json key of an unknown NAME's values: NOTE_PREFIX + NAME.
NOTE_PREFIX = "unknown_"


def _unknowns(model: nn.Module) -> Any:
    return getattr(model, "unknowns", None)


class TrackUnknowns(Callback):
    """Notes every unknown's value at the end of each epoch (history key ``unknown_NAME``)."""

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        sset = _unknowns(trainer.model)
        if sset is not None:
            values = {NOTE_PREFIX + n: v for n, v in sset.floats().items()}
            trainer.history.note(record.epoch, **values)
        return None


def unknowns_report(model: nn.Module) -> dict[str, dict[str, float | None]] | None:
    """results.json's "unknowns": each unknown's value, its truth and relative error (None
    where the truth is not declared); None without unknowns."""
    sset = _unknowns(model)
    if sset is None:
        return None
    errors = sset.errors()
    return {
        n: {"value": v, "truth": sset.symbols[n].truth, "rel_error": errors.get(n)}
        for n, v in sset.floats().items()
    }
