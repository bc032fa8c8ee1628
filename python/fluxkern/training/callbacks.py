"""Callbacks of :meth:`Trainer.fit`: progress, checkpoints, stopping rules, logging.

Resampling of the points is :class:`fluxkern.training.Resample` (its own module).
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from torch import nn

from fluxkern.runfiles import atomic_save
from fluxkern.training.history import EpochRecord
from fluxkern.training.trainer import StopTraining, Trainer

__all__ = [
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "EpochFunction",
    "Progress",
    "StopTraining",
    "TimeBudget",
]


class Callback:
    """The base of callbacks: hooks that do nothing; override those needed."""

    def on_start(self, trainer: Trainer) -> None:
        """Before the first step of fit()."""

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        """After each epoch; return True (or raise StopTraining) to end the run there."""
        return None

    def on_end(self, trainer: Trainer) -> None:
        """After the last epoch of a run that ended normally (or was stopped by a callback)."""

    def on_error(self, trainer: Trainer, exc: BaseException) -> None:
        """When fit() ends with an exception (Ctrl-C included), before it propagates."""


class EpochFunction(Callback):
    """A plain function as a callback: fn(epoch, model) after each epoch; True stops the run.

    Args:
        fn: Called with the epoch's number (from 1) and the model.
    """

    def __init__(self, fn: Callable[[int, nn.Module], bool | None]) -> None:
        self.fn = fn

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        return self.fn(record.epoch, trainer.model)


class Progress(Callback):
    """A one-line progress display on stderr, redrawn in place on a terminal (every 0.2 s) and
    printed every 10 s otherwise; the last epoch is always shown. After a check of
    :class:`fluxkern.training.UnseenCheck` the line ends with its latest RMS objective residuals
    on fresh and on training points (" | unseen r 3.1e-02 / train 2.0e-05"); :meth:`note`
    writes a line of its own (the check's warning).

    Args:
        enabled: False shows nothing.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = False
        self.t0 = self.last = 0.0
        self._open = False  # a line drawn in place and not ended (on a terminal)

    def on_start(self, trainer: Trainer) -> None:
        self.tty = sys.stderr.isatty()
        self.t0, self.last = time.perf_counter(), 0.0

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        if not self.enabled:
            return None
        now = time.perf_counter()
        interval = 0.2 if self.tty else 10.0
        total = trainer.target_epochs
        if record.epoch != total and now - self.last < interval:
            return None
        self.last = now
        text = f"loss {record.loss:.3e}"
        if trainer.al is not None:
            text += (
                f" | max|C| {record.max_violation:.2e}"
                f" | lambda [{record.lambda_min:.2g}, {record.lambda_max:.2g}]"
            )
        text += unknowns_text(trainer.model) + _unseen_text(trainer)
        bar = "#" * int(20 * record.epoch / max(total, 1))
        line = f"[{bar:<20}] {record.epoch}/{total} {now - self.t0:6.1f}s | {text}"
        sys.stderr.write("\r" + line[:160] + "\033[K" if self.tty else line + "\n")
        sys.stderr.flush()
        self._open = self.tty
        return None

    def on_end(self, trainer: Trainer) -> None:
        if self.enabled and self.tty and self._open:
            sys.stderr.write("\n")
            sys.stderr.flush()
        self._open = False

    def on_error(self, trainer: Trainer, exc: BaseException) -> None:
        self.on_end(trainer)

    def note(self, text: str) -> None:
        """Writes a line of its own on stderr (e.g. a warning), below the progress line on a
        terminal (the next update draws it anew below the note); nothing when not enabled."""
        if not self.enabled:
            return
        sys.stderr.write(("\n" if self._open else "") + text + "\n")
        sys.stderr.flush()
        self._open = False


def unknowns_text(model: nn.Module, limit: int = 4) -> str:
    """The progress line's " | kappa 0.1002 c -1.99": the current values of the first unknowns
    (fluxkern.unknown) of the model, or "" without any."""
    sset = getattr(model, "unknowns", None)
    if sset is None:
        return ""
    items = list(sset.floats().items())
    text = " ".join(f"{n} {v:.4g}" for n, v in items[:limit])
    return " | " + text + (" ..." if len(items) > limit else "")


def _unseen_text(trainer: Trainer) -> str:
    """The progress line's " | unseen r U / train T": the latest RMS objective residuals of the
    unseen-point check (the history's notes of :class:`fluxkern.training.UnseenCheck`), or ""
    before one."""
    latest = trainer.history.latest
    unseen, train = latest("unseen_residual"), latest("train_residual")
    if unseen is None or train is None:
        return ""
    return f" | unseen r {unseen[1]:.1e} / train {train[1]:.1e}"


class Checkpoint(Callback):
    """Saves the trainer's state every `every` epochs and at the end, atomically.

    The file holds `meta` and :meth:`Trainer.state_dict`; a failure raises
    :class:`fluxkern.runfiles.RunFileError` and keeps the previous checkpoint.

    Args:
        path: The checkpoint file.
        every: Epochs between checkpoints (by epoch number: epochs divisible by it).
        meta: More entries of the file (e.g. problem, formulation, options).

    Attributes:
        last_epoch: The epoch of the last checkpoint written (or set after a resume), or None.
    """

    def __init__(self, path: str, every: int = 100, meta: dict[str, Any] | None = None) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer; got {every!r}")
        self.path, self.every, self.meta = path, every, dict(meta or {})
        self.last_epoch: int | None = None

    def save(self, trainer: Trainer) -> None:
        """Writes the checkpoint now."""
        atomic_save(
            {**self.meta, **trainer.state_dict()},
            self.path,
            kept="the checkpoint there before, if any, is unchanged",
        )
        self.last_epoch = trainer.epoch

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        if record.epoch % self.every == 0:
            self.save(trainer)
        return None

    def on_end(self, trainer: Trainer) -> None:
        self.save(trainer)


class EarlyStopping(Callback):
    """Ends the run at the first epoch that meets every tolerance given.

    Args:
        loss: Stop once the loss is at most this.
        max_violation: Stop once max |C| is at most this (a NaN violation, as in the PINN form,
            never meets it).
    """

    def __init__(self, loss: float | None = None, max_violation: float | None = None) -> None:
        if loss is None and max_violation is None:
            raise ValueError("EarlyStopping needs a loss or a max_violation tolerance")
        self.loss, self.max_violation = loss, max_violation

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        if self.loss is not None and not record.loss <= self.loss:
            return False
        if self.max_violation is not None and not record.max_violation <= self.max_violation:
            return False
        raise StopTraining(f"tolerance met at epoch {record.epoch}")


class TimeBudget(Callback):
    """Ends the run after the first epoch that ends past a time budget.

    The budget counts :attr:`Trainer.elapsed`: the training time before a resume included. An
    epoch is never cut short.

    Args:
        seconds: The budget.
    """

    def __init__(self, seconds: float) -> None:
        if not (isinstance(seconds, (int, float)) and seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(f"seconds must be a non-negative number; got {seconds!r}")
        self.seconds = seconds

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        if trainer.elapsed >= self.seconds:
            raise StopTraining(f"time budget of {self.seconds:g} s spent at epoch {record.epoch}")
        return None


class CSVLogger(Callback):
    """Writes one CSV row per epoch: the fields of :class:`EpochRecord`, under a header.

    Rows are flushed as they are written. A run that continues a trainer's epochs (after a
    resume) appends to the file when it exists; a fresh run writes a new one.

    Args:
        path: The CSV file.
    """

    FIELDS = ("epoch", "loss", "max_violation", "lambda_min", "lambda_max", "evals", "time_s")

    def __init__(self, path: str) -> None:
        self.path = path
        self._fh: IO[str] | None = None
        self._writer: Any = None

    def on_start(self, trainer: Trainer) -> None:
        mode = "a" if trainer.epoch > 0 else "w"
        self._fh = open(self.path, mode, newline="")  # noqa: SIM115 (closed in on_end)
        self._writer = csv.writer(self._fh)
        if self._fh.tell() == 0:
            self._writer.writerow(self.FIELDS)

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        self._writer.writerow([repr(getattr(record, f)) for f in self.FIELDS])
        assert self._fh is not None
        self._fh.flush()
        return None

    def on_end(self, trainer: Trainer) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def on_error(self, trainer: Trainer, exc: BaseException) -> None:
        self.on_end(trainer)
