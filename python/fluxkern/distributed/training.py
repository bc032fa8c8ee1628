"""The training loop of one rank: every rank takes the same primal step and dual update.

:class:`DistributedTrainer` all-reduces, in one call per loss evaluation, the parameter
gradients and the loss of its :class:`DistributedAugmentedLagrangian`, so every rank's
optimizer (L-BFGS with its line search, or Adam) sees the global loss and gradient and the
parameters stay equal on all ranks. :class:`DistributedCheckpoint` writes the whole state from
rank 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from fluxkern.distributed.comm import Comm, DistributedError
from fluxkern.distributed.lagrangian import DistributedAugmentedLagrangian
from fluxkern.evaluation import Evaluation
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.runfiles import atomic_save
from fluxkern.training import Callback, Checkpoint, EpochRecord, History, Trainer

__all__ = ["DistributedCheckpoint", "DistributedTrainer"]


class DistributedTrainer(Trainer):
    """A :class:`fluxkern.training.Trainer` for one rank of a data-parallel run.

    At construction the parameters are broadcast from rank 0. Each loss evaluation all-reduces
    the gradients and the loss (one flat buffer); the dual update and the epoch's record
    (loss, max |C|, multiplier range) are global, so the history is the same on every rank.
    fit() ends every rank at the same epoch: a stop asked for by a callback on one rank (e.g.
    a TimeBudget, whose clock differs per rank) stops all of them.

    Args:
        model: The network.
        loss: This rank's DistributedAugmentedLagrangian.
        optimizer: A torch optimizer over the model's parameters.
        comm: This rank's Comm.
        name: Names the run in error messages.
        problem: The problem being solved, if any.
        seed: The seed the points were drawn with.

    Raises:
        TypeError: The loss is not a DistributedAugmentedLagrangian.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: DistributedAugmentedLagrangian,
        optimizer: torch.optim.Optimizer,
        *,
        comm: Comm,
        name: str = "",
        problem: Any = None,
        seed: int = 0,
    ) -> None:
        _check_loss(loss)
        super().__init__(model, loss, optimizer, name=name, problem=problem, seed=seed)
        self.comm = comm
        with torch.no_grad():
            flat = comm.broadcast_(parameters_to_vector(self.params))
            vector_to_parameters(flat, self.params)

    def set_loss(self, loss: AugmentedLagrangian | Callable[[], Tensor]) -> None:
        """Trains on another DistributedAugmentedLagrangian from the next step on."""
        _check_loss(loss)
        super().set_loss(loss)

    def _closure(self) -> Tensor:
        local = super()._closure()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [local.detach().reshape(1)])
        flat = self.comm.sum(flat)  # [P + 1]: the gradient, then the loss
        at = 0
        for p in self.params:
            n = p.numel()
            p.grad = flat[at : at + n].view_as(p)
            at += n
        total = flat[at]
        assert self.al is not None
        self.al.last_loss = float(total)
        return total

    def _dual_update(
        self, loss: Tensor, evaluation: Evaluation | None = None
    ) -> tuple[float, float, float, float, bool]:
        al = self.al
        assert al is not None
        # the same on every rank: the optimizers take the same steps on the all-reduced loss
        # and gradient, so each reports the same last_closure_at_result
        values = al.update_multipliers(evaluation)
        loss_f = al.last_loss if al.last_loss is not None else float(loss)
        lams = [v for v in al.multipliers.values() if v.numel()]
        cons = [v.abs().max() for k, v in values.items() if k in al.multipliers and v.numel()]
        none = torch.tensor(-math.inf, dtype=al.dtype, device=al.device)
        local = torch.stack(
            [
                torch.stack(cons).max() if cons else none,
                -torch.stack([v.min() for v in lams]).min() if lams else none,
                torch.stack([v.max() for v in lams]).max() if lams else none,
                # 1 where some parameter is not finite (the same on every rank: replicas)
                (~torch.stack([torch.isfinite(p).all() for p in self.params]).all()).to(al.dtype),
            ]
        )
        viol, neg_lo, hi, bad = self.comm.max(local).tolist()  # one all-reduce for all four
        violation = viol if viol > -math.inf else 0.0
        lam_lo = -neg_lo if neg_lo > -math.inf else math.nan
        lam_hi = hi if hi > -math.inf else math.nan
        return loss_f, violation, lam_lo, lam_hi, bad == 0.0

    def fit(self, epochs: int, callbacks: Iterable[Callback] = ()) -> History:
        """As :meth:`Trainer.fit`; a stop on any rank stops every rank after that epoch."""
        return super().fit(epochs, [*callbacks, _StopOnAnyRank(self.comm)])

    def check_replicas(self) -> None:
        """Raises DistributedError unless the parameters are equal on every rank (a collective).

        Every rank sees a difference: where the ranks' values differ, none holds both the
        largest and the smallest.
        """
        with torch.no_grad():
            flat = parameters_to_vector(self.params)
            both = torch.cat([flat, -flat])
            if not torch.equal(self.comm.max(both), both):
                raise DistributedError(
                    f"rank {self.comm.rank}: the parameters differ between ranks (the ranks "
                    "took different steps); the run cannot continue"
                )


def _check_loss(loss: Any) -> None:
    if not isinstance(loss, DistributedAugmentedLagrangian):
        raise TypeError(
            "DistributedTrainer trains a DistributedAugmentedLagrangian (the flux form), not "
            f"{type(loss).__name__}"
        )


class _StopOnAnyRank(Callback):
    """The last callback of a distributed fit: stops every rank if a callback stopped one."""

    def __init__(self, comm: Comm) -> None:
        self.comm = comm

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        flag = torch.tensor([1.0 if trainer.stopped else 0.0], device=self.comm.device)
        stop = bool(self.comm.max(flag)[0] > 0)
        if stop and not trainer.stopped:
            trainer.stop_reason = "a callback on another rank stopped the run"
        return stop


class DistributedCheckpoint(Checkpoint):
    """:class:`fluxkern.training.Checkpoint` for a distributed run: every rank gathers the
    whole state (the dual shards concatenated, as a single process's) and rank 0 writes it; a
    failure to write raises the same RunFileError on every rank. Each save also checks that
    the parameters are equal on all ranks.

    Args:
        path: The checkpoint file (on rank 0's file system).
        every: Epochs between checkpoints.
        meta: More entries of the file.
        comm: This rank's Comm.
    """

    def __init__(
        self, path: str, every: int = 100, meta: dict[str, Any] | None = None, *, comm: Comm
    ) -> None:
        super().__init__(path, every, meta)
        self.comm = comm

    def save(self, trainer: Trainer) -> None:
        """Writes the checkpoint now (a collective: every rank calls it)."""
        if isinstance(trainer, DistributedTrainer):
            trainer.check_replicas()
        state = {**self.meta, **trainer.state_dict()}
        kept = "the checkpoint there before, if any, is unchanged"
        self.comm.on_root(lambda: atomic_save(state, self.path, kept=kept))
        self.last_epoch = trainer.epoch
