"""Data-parallel training with torch.distributed (DESIGN.md section 7).

Each rank holds a contiguous shard of every point block (its points, data, pointwise
multipliers and their dual statistics, which never move) and the same network and optimizer.
Per loss evaluation one all-reduce sums the ranks' gradients and losses, so every rank's
optimizer takes the same step; the dual update all-reduces the loss, the global multipliers'
constraint sums and the pecann/capu norms and means over points; the epoch record (max |C|,
multiplier range) is all-reduced too. Rank 0 writes the files.

Example (under ``torchrun --nproc-per-node 2``):
    >>> results = fluxkern.solve("poisson", distributed=True, out="runs/poisson")
"""

from __future__ import annotations

from fluxkern.distributed.comm import (
    DEFAULT_TIMEOUT_S,
    TIMEOUT_ENV,
    Comm,
    DistributedError,
    end_process,
    init,
    shard_block,
    shard_range,
    shutdown,
)
from fluxkern.distributed.lagrangian import DistributedAugmentedLagrangian
from fluxkern.distributed.training import DistributedCheckpoint, DistributedTrainer

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "TIMEOUT_ENV",
    "Comm",
    "DistributedAugmentedLagrangian",
    "DistributedCheckpoint",
    "DistributedError",
    "DistributedTrainer",
    "end_process",
    "init",
    "shard_block",
    "shard_range",
    "shutdown",
]
