"""A run's per-epoch records: :class:`EpochRecord` and :class:`History`."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

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


@dataclass
class History:
    """The records of a run's epochs, in order.

    Every field but the epoch is saved (history.json and the checkpoint's "history" hold them
    as lists by key).

    Attributes:
        records: One EpochRecord per epoch run.
    """

    records: list[EpochRecord] = field(default_factory=list)

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

    def column(self, key: str) -> list[float]:
        """One field over the epochs, e.g. column("loss")."""
        return [getattr(r, key) for r in self.records]

    def to_dict(self) -> dict[str, list[float]]:
        """The saved fields as lists by key (what history.json and checkpoints hold): loss,
        max_violation, lambda_min, lambda_max, evals (loss evaluations of the epoch's primal
        step) and time_s (the epoch's wall time)."""
        return {key: self.column(key) for key in SAVED_KEYS + TIMING_KEYS}

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
        return cls(
            [
                EpochRecord(i + 1, float(lo), float(mv), float(lmin), float(lmax), int(e), float(t))
                for i, (lo, mv, lmin, lmax, e, t) in enumerate(rows)
            ]
        )

    @classmethod
    def from_json(cls, text: str) -> History:
        """The history of a history.json's content."""
        return cls.from_dict(json.loads(text))
