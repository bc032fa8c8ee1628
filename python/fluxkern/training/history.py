"""A run's per-epoch records: :class:`EpochRecord` and :class:`History`."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["EpochRecord", "History"]

# The keys of history.json and of a checkpoint's "history", in their order.
SAVED_KEYS = ("loss", "max_violation", "lambda_min", "lambda_max")
# Saved too, and optional when read back (histories written before they were saved lack them).
TIMING_KEYS = ("evals", "time_s")


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch (one primal step and one dual update) gave.

    Attributes:
        epoch: The epoch's number, counting from 1.
        loss: The loss after the step (for the flux form: at the dual update's parameters).
        max_violation: max |C| over the constraints (NaN for the PINN form; 0.0 when there are
            no constraint values).
        lambda_min: The smallest multiplier (NaN when there are none).
        lambda_max: The largest multiplier (NaN when there are none).
        evals: Loss evaluations of the primal step (0 when not known, e.g. after a resume).
        time_s: Seconds the epoch took (NaN when not known).
    """

    epoch: int
    loss: float
    max_violation: float = math.nan
    lambda_min: float = math.nan
    lambda_max: float = math.nan
    evals: int = 0
    time_s: float = math.nan


_RECORD_FIELDS = frozenset(f.name for f in fields(EpochRecord))


@dataclass
class History:
    """The records of a run's epochs, in order, and values that callbacks note at some epochs.

    Every field but the epoch is saved (history.json and the checkpoint's "history" hold them
    as lists by key). A value noted with :meth:`note` (e.g. the unseen-point check's
    "unseen_residual") is saved after them under its own key: one entry per epoch, None (null in
    history.json) at the epochs where it was not noted. A history without notes saves only the
    records' fields.

    Attributes:
        records: One EpochRecord per epoch run.
        notes: Noted values by key, then by epoch.
    """

    records: list[EpochRecord] = field(default_factory=list)
    notes: dict[str, dict[int, float | None]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[EpochRecord]:
        return iter(self.records)

    def __getitem__(self, index: int) -> EpochRecord:
        return self.records[index]

    def append(self, record: EpochRecord) -> None:
        """Adds the record of the next epoch."""
        self.records.append(record)

    @property
    def last(self) -> EpochRecord | None:
        """The latest record, or None before the first epoch."""
        return self.records[-1] if self.records else None

    def column(self, key: str) -> list[Any]:
        """One field over the epochs, e.g. column("loss"); for a noted key, its value at each
        epoch (None where it was not noted)."""
        if key in self.notes:
            values = self.notes[key]
            return [values.get(r.epoch) for r in self.records]
        return [getattr(r, key) for r in self.records]

    def note(self, epoch: int, **values: float | None) -> None:
        """Records values that a callback computed at an epoch, each under its key.

        Args:
            epoch: The epoch (from 1) they belong to.
            **values: The values by key (None: not computed); not a field of EpochRecord.

        Raises:
            ValueError: A key is a field of EpochRecord.
        """
        for key, value in values.items():
            if key in _RECORD_FIELDS:
                raise ValueError(f"{key!r} is a field of the epoch records, not a note")
            self.notes.setdefault(key, {})[epoch] = None if value is None else float(value)

    def latest(self, key: str) -> tuple[int, float] | None:
        """The latest epoch at which `key` was noted with a value, and the value; or None."""
        values = self.notes.get(key, {})
        for epoch in sorted(values, reverse=True):
            value = values[epoch]
            if value is not None:
                return epoch, value
        return None

    def to_dict(self) -> dict[str, list[Any]]:
        """The saved fields as lists by key (what history.json and checkpoints hold): loss,
        max_violation, lambda_min, lambda_max, evals (loss evaluations of the epoch's primal
        step) and time_s (the epoch's wall time); then each noted key (None at the epochs
        without a value)."""
        out: dict[str, list[Any]] = {key: self.column(key) for key in SAVED_KEYS + TIMING_KEYS}
        for key in self.notes:
            out[key] = self.column(key)
        return out

    def to_json(self) -> str:
        """The content of history.json."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[float]]) -> History:
        """The history that :meth:`to_dict` gave (e.g. a checkpoint's "history").

        Raises:
            ValueError: A key is missing or the lists differ in length.
        """
        missing = [k for k in SAVED_KEYS if k not in data]
        if missing:
            raise ValueError(f"history has no {', '.join(missing)}")
        lengths = {len(data[k]) for k in SAVED_KEYS}
        if len(lengths) != 1:
            raise ValueError(f"history lists differ in length: {sorted(lengths)}")
        n = lengths.pop()
        evals = data.get("evals", [0] * n)
        times = data.get("time_s", [math.nan] * n)
        if len(evals) != n or len(times) != n:
            raise ValueError(f"history's evals and time_s do not hold {n} epochs")
        rows = zip(*(data[k] for k in SAVED_KEYS), evals, times, strict=True)
        history = cls(
            [
                EpochRecord(i + 1, float(lo), float(mv), float(lmin), float(lmax), int(e), float(t))
                for i, (lo, mv, lmin, lmax, e, t) in enumerate(rows)
            ]
        )
        for key, values in data.items():  # the notes: a number or None per epoch
            if key in _RECORD_FIELDS or isinstance(values, (str, bytes)):
                continue
            if not isinstance(values, Sequence) or len(values) != n:
                raise ValueError(f"history's {key} does not hold {n} epochs")
            history.notes[key] = {i + 1: float(v) for i, v in enumerate(values) if v is not None}
        return history

    @classmethod
    def from_json(cls, text: str) -> History:
        """The history of a history.json's content."""
        return cls.from_dict(json.loads(text))
