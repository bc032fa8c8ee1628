"""Ctrl-C and SIGTERM during a run: the exceptions that say where the run stopped, and a
SIGTERM handler that ends training at the end of the current epoch (so that the final
checkpoint holds a whole epoch's state).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from fluxkern.training.callbacks import Callback
from fluxkern.training.history import EpochRecord
from fluxkern.training.trainer import StopTraining, Trainer

__all__ = ["InterruptedRun", "SigtermStop", "TerminatedRun", "stop_on_sigterm"]


class InterruptedRun(KeyboardInterrupt):
    """Ctrl-C during training; says where the last checkpoint is."""


class TerminatedRun(InterruptedRun):
    """SIGTERM: training ended after the epoch it arrived in, with a final checkpoint; the
    message says where it is. The command line exits with code 143 (128 + SIGTERM)."""


class SigtermStop(Callback):
    """Ends training after the epoch in which SIGTERM arrived (a second SIGTERM interrupts at
    once, as Ctrl-C does).

    Attributes:
        received: Whether SIGTERM arrived.
    """

    def __init__(self) -> None:
        self.received = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler."""
        if self.received:
            raise KeyboardInterrupt("a second SIGTERM")
        self.received = True

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        if self.received:
            raise StopTraining(f"SIGTERM in epoch {record.epoch}")
        return None


@contextmanager
def stop_on_sigterm() -> Iterator[SigtermStop]:
    """Installs a :class:`SigtermStop` as the SIGTERM handler for the block (in the main
    thread only; elsewhere the callback never fires) and restores the previous handler.

    Yields:
        The callback to pass to Trainer.fit.
    """
    stop = SigtermStop()
    previous: Any = None
    main = threading.current_thread() is threading.main_thread()
    if main:
        previous = signal.signal(signal.SIGTERM, stop.handle)
    try:
        yield stop
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
