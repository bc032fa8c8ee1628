"""The augmented-Lagrangian loss over point blocks, with multiplier state and dual updates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fluxkern import ops
from fluxkern.blocks import Block, BoundBlock, Constraint, Objective
from fluxkern.duals import make_rule
from fluxkern.nn import mlp_spec

__all__ = ["AugmentedLagrangian"]


class AugmentedLagrangian:
    """L = sum_obj w R(sum_i r_i^2) + sum_con R(sum_i lambda_i C_i + mu_i / 2 C_i^2).

    Calling the object returns L at the model's current parameters, differentiable with respect
    to them (works with torch.optim.Adam and with torch.optim.LBFGS closures).
    update_multipliers() applies the dual rule with C at the current parameters.

    Args:
        model: A fluxkern.MLP or an nn.Sequential that fluxkern.jet accepts.
        terms: Objective and Constraint blocks (unique names).
        dual: "rmsprop", "pecann" or "capu".
        backend: None (fastest for the model's device), "torch", "cpu" or "cuda".
        **dual_options: Options of the dual rule (e.g. beta, eps, eta for rmsprop).
    """

    def __init__(
        self,
        model: nn.Module,
        terms: Sequence[Block],
        dual: str = "rmsprop",
        backend: str | None = None,
        **dual_options: float,
    ) -> None:
        self.model = model
        spec = mlp_spec(model)
        param = spec.weights[0]
        d, m = param.shape[1], spec.weights[-1].shape[0]
        self.dtype, self.device = param.dtype, param.device
        self.backend = ops.resolve_backend(backend, self.device)
        self.rule = make_rule(dual, **dual_options)
        self.dual = dual
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"block names must be unique, got {names}")
        if not any(isinstance(t, (Objective, Constraint)) for t in terms):
            raise ValueError("give at least one Objective or Constraint")
        self.terms = list(terms)
        self.bound: dict[str, BoundBlock] = {}
        self._state: dict[str, dict[str, Any]] = {}
        for t in self.terms:
            if not isinstance(t, (Objective, Constraint)):
                raise TypeError(f"terms must be Objective or Constraint, got {type(t).__name__}")
            self.bound[t.name] = t.bind(d, m, self.dtype, self.device)
            if isinstance(t, Constraint):
                shape = (t.n, t.n_res) if t.multiplier == "pointwise" else (t.n_res,)
                self._state[t.name] = self.rule.init_state(
                    shape, t.n_res, t.init, self.dtype, self.device
                )
        self.last_loss: float | None = None

    # ------------------------------------------------------------------ state
    @property
    def multipliers(self) -> dict[str, Tensor]:
        """lambda per constraint: [N, R] (pointwise) or [R] (global)."""
        return {k: s["lam"] for k, s in self._state.items()}

    @property
    def penalties(self) -> dict[str, Tensor]:
        """mu per constraint, [R]."""
        return {k: s["mu"] for k, s in self._state.items()}

    def state_dict(self) -> dict[str, Any]:
        """Multipliers, penalties and the dual rule's statistics, by constraint name."""
        return {
            "dual": self.dual,
            "options": dict(self.rule.options),
            "state": {
                k: {n: v.detach().clone() for n, v in s.items()} for k, s in self._state.items()
            },
            "last_loss": self.last_loss,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what state_dict() saved; names, rule and shapes must match."""
        if state.get("dual") != self.dual:
            raise ValueError(f"state is for dual rule {state.get('dual')!r}, not {self.dual!r}")
        saved = state["state"]
        if set(saved) != set(self._state):
            raise ValueError(
                f"state has constraints {sorted(saved)}, expected {sorted(self._state)}"
            )
        for name, s in saved.items():
            for key, val in s.items():
                cur = self._state[name][key]
                if tuple(val.shape) != tuple(cur.shape):
                    raise ValueError(f"{name}.{key}: shape {list(val.shape)} != {list(cur.shape)}")
                self._state[name][key] = val.to(dtype=cur.dtype, device=cur.device).clone()
        self.last_loss = state.get("last_loss")

    # ------------------------------------------------------------------ evaluation
    def _block_loss(self, b: BoundBlock) -> tuple[Tensor, Tensor]:
        t = b.block
        spec = mlp_spec(self.model)
        if isinstance(t, Objective):
            lam = torch.full((t.n_res,), t.weight, dtype=self.dtype, device=self.device)
            mu = torch.zeros(t.n_res, dtype=self.dtype, device=self.device)
            squared = True
        else:
            lam, mu = self._state[t.name]["lam"], self._state[t.name]["mu"]
            squared = t.form == "squared"
        mean = t.reduction == "mean"
        if b.fused:
            return ops.block_loss(
                b.x,
                spec.shift,
                spec.scale,
                spec.weights,
                spec.biases,
                spec.activation,
                b.cols,
                b.table,
                b.coef,
                lam,
                mu,
                t.n_res,
                squared,
                mean,
                t.paired,
                self.backend,
            )
        # non-polynomial residuals: torch on top of the jet
        y, jac = ops.mlp_jet(
            b.x, spec.shift, spec.scale, spec.weights, spec.biases, spec.activation, self.backend
        )
        r = b.residuals_torch(y, jac)
        c = r * r if squared else r
        per_point = (lam * c + 0.5 * mu * c * c).sum(1)
        loss = per_point.mean() if mean and t.n > 0 else per_point.sum()
        return loss, c.detach()

    def __call__(self) -> Tensor:
        total = None
        for b in self.bound.values():
            loss, _ = self._block_loss(b)
            total = loss if total is None else total + loss
        self.last_loss = float(total.detach())
        return total

    def losses(self) -> dict[str, float]:
        """Each block's loss at the current parameters (no gradient)."""
        with torch.no_grad():
            return {k: float(self._block_loss(b)[0]) for k, b in self.bound.items()}

    def constraint_values(self) -> dict[str, Tensor]:
        """C [N, R] per constraint at the current parameters."""
        out = {}
        with torch.no_grad():
            for name in self._state:
                out[name] = self._block_loss(self.bound[name])[1]
        return out

    def update_multipliers(self) -> dict[str, Tensor]:
        """Applies the dual rule with C at the current parameters; returns those C."""
        with torch.no_grad():
            values = {}
            total = 0.0
            for name, b in self.bound.items():
                loss, c = self._block_loss(b)
                total += float(loss)
                values[name] = c
            for name, state in self._state.items():
                t = self.bound[name].block
                c = values[name]
                if t.multiplier == "global":
                    c = c.mean(0) if t.reduction == "mean" else c.sum(0)
                self.rule.update(state, c, total)
        return values
