"""RunContext: what differs between a run in one process and one rank of a distributed run.

:func:`fluxkern.solve` is written once (build, resume, fit, save, evaluate, write); the context
says which process writes the files, how the trainer is made a rank's, how a checkpoint is
read and written, and what the whole multipliers are at the end. This class is the one-process
context; :class:`fluxkern.distributed.DistributedContext` is a rank's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.training import Checkpoint, Trainer

__all__ = ["RunContext"]

T = TypeVar("T")


class RunContext:
    """A run in one process: it builds, trains and writes everything itself.

    Attributes:
        world: The number of processes of the run.
        rank: This process's rank.
        is_root: Whether this process writes the run's files and prints its progress.
    """

    world = 1
    rank = 0
    is_root = True

    def prepare(self, trainer: Trainer) -> Trainer:
        """The trainer this process runs, from the one-process trainer of the run."""
        return trainer

    def on_root(self, fn: Callable[[], T]) -> T:
        """fn() on the writing process, its result (or its error) on every process."""
        return fn()

    def read(self, fn: Callable[[], T]) -> T:
        """A file read by the writing process (fn), given to every process."""
        return fn()

    def checkpoint(self, path: str, every: int, meta: dict[str, Any]) -> Checkpoint:
        """The run's checkpoint callback."""
        return Checkpoint(path, every, meta)

    def whole_loss(self, trainer: Trainer) -> AugmentedLagrangian | None:
        """The run's augmented Lagrangian with every multiplier (for model.pt and the plots)."""
        return trainer.al

    def info(self) -> dict[str, Any] | None:
        """What results.json says of the processes ("distributed"), or None for one."""
        return None
