"""The augmented Lagrangian of one rank: its shard of every block, global quantities all-reduced.

Per rank: the points, data, pointwise multipliers and their dual statistics of its shards
(they never move). Replicated on every rank and kept equal by all-reducing what they are
computed from: the loss, the global multipliers (their C summed over all points), and the
norms and means over points that the pecann and capu rules take (DualRule.point_sum).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fluxkern.blocks import Block
from fluxkern.distributed.comm import Comm, shard_block, shard_range
from fluxkern.evaluation import Evaluation
from fluxkern.lagrangian import AugmentedLagrangian, _check_terms

__all__ = ["DistributedAugmentedLagrangian"]


class DistributedAugmentedLagrangian(AugmentedLagrangian):
    """One rank's part of an :class:`AugmentedLagrangian` over blocks split across ranks.

    Calling it returns this rank's part of the loss (the ranks' parts add up to the loss; the
    caller all-reduces it and the parameter gradients, see
    :class:`fluxkern.distributed.DistributedTrainer`). update_multipliers() and losses() are
    collectives that give every rank the same global values; state_dict() and
    load_state_dict() hold the whole (all ranks') state, laid out as a single process's.
    multipliers, penalties and constraint_values() are this rank's shards.

    Args:
        model: The network (equal on every rank).
        terms: The whole blocks (every rank passes the same); each rank keeps its shard.
        comm: This rank's :class:`fluxkern.distributed.Comm`.
        dual: "rmsprop", "pecann" or "capu".
        backend: None (fastest for the model's device), "torch", "cpu" or "cuda".
        **dual_options: Options of the dual rule.

    Attributes:
        full_terms: The whole blocks.
    """

    def __init__(
        self,
        model: nn.Module,
        terms: Sequence[Block],
        comm: Comm,
        dual: str = "rmsprop",
        backend: str | None = None,
        **dual_options: float,
    ) -> None:
        _check_terms(terms)
        self.comm = comm
        self.full_terms = list(terms)
        super().__init__(model, self._shards(terms), dual, backend, **dual_options)
        self.rule.point_sum = comm.sum

    def _shards(self, terms: Sequence[Block]) -> list[Block]:
        return [shard_block(t, self.comm.rank, self.comm.world) for t in terms]

    def set_terms(self, terms: Sequence[Block], pointwise: str = "reset") -> None:
        """As :meth:`AugmentedLagrangian.set_terms`, with the whole new blocks (sharded here)."""
        _check_terms(terms)
        super().set_terms(self._shards(terms), pointwise)
        self.full_terms = list(terms)

    def update_multipliers(self, evaluation: Evaluation | None = None) -> dict[str, Tensor]:
        """Applies the dual rule with C at the current parameters; returns this rank's C.

        One all-reduce carries the loss and, for each global multiplier, its C summed over the
        rank's points; pecann and capu all-reduce their norms and means over pointwise C.

        Args:
            evaluation: This rank's evaluation at the current parameters (its local loss and
                C), or None to evaluate now; as for
                :meth:`AugmentedLagrangian.update_multipliers`. Every rank must pass one or
                every rank None (the trainer's rule is the same on all ranks).
        """
        loss, values = self._current(evaluation)
        self._token = object()  # the multipliers change: earlier evaluations are stale
        with torch.no_grad():
            glob = [n for n in self._state if self.bound[n].block.multiplier == "global"]
            parts = [loss.reshape(1)] + [values[n].sum(0) for n in glob]
            total = self.comm.sum(torch.cat(parts))
            sums, at, loss_all = {}, 1, float(total[0])
            for name in glob:
                r = self.bound[name].block.n_res
                sums[name], at = total[at : at + r], at + r
            for name, state in self._state.items():
                t = self.bound[name].block
                c = values[name]
                if t.multiplier == "global":
                    c = sums[name] / t.n_global if t.reduction == "mean" else sums[name]
                c = t.within_tolerance(c)  # noisy data (Constraint.tolerance), as in one process
                self.rule.update(state, c, loss_all)
        return values

    def losses(self) -> dict[str, float]:
        """Each block's loss over all ranks (a collective)."""
        local = super().losses()
        names = list(local)
        vals = torch.tensor([local[n] for n in names], dtype=torch.float64, device=self.device)
        return dict(zip(names, self.comm.sum(vals).tolist(), strict=True))

    # ------------------------------------------------------------------ whole state
    def _pointwise(self, name: str) -> bool:
        return self.bound[name].block.multiplier == "pointwise"

    def state_dict(self) -> dict[str, Any]:
        """The whole state, as a single process on all the points has it (a collective).

        Pointwise multipliers and their statistics are the ranks' shards concatenated in rank
        order; the replicated rest is this rank's.
        """
        local = super().state_dict()
        cpu = {k: {n: v.cpu() for n, v in s.items()} for k, s in local["state"].items()}
        parts = self.comm.all_gather_object(cpu)
        full: dict[str, dict[str, Tensor]] = {}
        for name, s in local["state"].items():
            full[name] = {}
            for key, val in s.items():
                if self._pointwise(name) and val.shape == s["lam"].shape:
                    val = torch.cat([p[name][key] for p in parts]).to(val.device)
                full[name][key] = val
        return {**local, "state": full}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a whole state (of :meth:`state_dict`, or of a single process on the same
        points, or of a run on another number of ranks): each rank takes its slice.

        Raises:
            ValueError: Names, rule or shapes do not match (nothing is changed then).
        """
        mine: dict[str, Any] = {}
        for name, s in state["state"].items():
            if name not in self._state or not self._pointwise(name) or "lam" not in s:
                mine[name] = s
                continue
            n = self.bound[name].block.n_global
            lam = s["lam"]
            if lam.dim() != 2 or lam.shape[0] != n:
                raise ValueError(
                    f"{name}: the state has multipliers of shape {list(lam.shape)}; this run's "
                    f"block has {n} points"
                )
            i0, i1 = shard_range(n, self.comm.rank, self.comm.world)
            mine[name] = {k: v[i0:i1] if v.shape == lam.shape else v for k, v in s.items()}
        super().load_state_dict({**state, "state": mine})

    def gather(self) -> AugmentedLagrangian:
        """A single-process AugmentedLagrangian on the whole blocks with the whole state (a
        collective), e.g. for plots of the multipliers."""
        full = self.state_dict()
        al = AugmentedLagrangian(
            self.model, self.full_terms, self.dual, self.backend, **self.rule.options
        )
        al.load_state_dict(full)
        return al
