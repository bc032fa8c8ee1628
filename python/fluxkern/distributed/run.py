"""DistributedContext: one rank's part of :func:`fluxkern.solve` with distributed=True.

Every rank builds the same model and draws the same points (from the seed), keeps its shard of
each block and trains; rank 0 alone prepares the output folder, reads the checkpoint to resume
from (and broadcasts it, so the ranks need no shared file system), writes checkpoints,
model.pt, the results and the plots, evaluates the errors, and sends the results to every
rank. A failure on rank 0 is raised on every rank. The steps themselves are solve()'s, written
once (fluxkern.solver); this context is what differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

from fluxkern.distributed.comm import Comm, init
from fluxkern.distributed.lagrangian import DistributedAugmentedLagrangian
from fluxkern.distributed.training import DistributedCheckpoint, DistributedTrainer
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.run_context import RunContext
from fluxkern.training import Checkpoint, Trainer

__all__ = ["DistributedContext"]

T = TypeVar("T")


def _cpu(obj: Any) -> Any:
    """obj with every tensor in it (in dicts, lists, tuples) moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


class DistributedContext(RunContext):
    """One rank of a data-parallel run (rank 0 writes).

    Args:
        comm: This rank's Comm (fluxkern.distributed.init).
    """

    def __init__(self, comm: Comm) -> None:
        self.comm = comm
        self.world, self.rank, self.is_root = comm.world, comm.rank, comm.is_root

    @classmethod
    def join(cls, device: str) -> DistributedContext:
        """Joins (or creates) the process group (fluxkern.distributed.init)."""
        return cls(init(device))

    def prepare(self, trainer: Trainer) -> Trainer:
        """The rank's trainer: the one-process trainer's model and optimizer, with the loss
        replaced by this rank's shard of it and the parameters broadcast from rank 0."""
        al = trainer.al
        if al is None:
            raise ValueError("distributed training runs the flux formulation only")
        shard = DistributedAugmentedLagrangian(
            trainer.model, al.terms, self.comm, al.dual, al.backend, **al.rule.options
        )
        return DistributedTrainer(
            trainer.model,
            shard,
            trainer.optimizer,
            comm=self.comm,
            name=trainer.name,
            problem=trainer.problem,
            seed=trainer.seed,
        )

    def on_root(self, fn: Callable[[], T]) -> T:
        return self.comm.on_root(fn)

    def read(self, fn: Callable[[], T]) -> T:
        """Rank 0 reads; every rank gets it through the CPU (no rank gets tensors on another's
        GPU)."""
        return self.comm.on_root(lambda: _cpu(fn()))

    def checkpoint(self, path: str, every: int, meta: dict[str, Any]) -> Checkpoint:
        meta = {**meta, "world_size": self.world}
        return DistributedCheckpoint(path, every, meta, comm=self.comm)

    def whole_loss(self, trainer: Trainer) -> AugmentedLagrangian | None:
        """The multipliers of every rank gathered (a collective)."""
        shard = trainer.al
        assert isinstance(shard, DistributedAugmentedLagrangian)
        return shard.gather()

    def info(self) -> dict[str, Any] | None:
        return {"world_size": self.world, "backend": torch.distributed.get_backend()}
