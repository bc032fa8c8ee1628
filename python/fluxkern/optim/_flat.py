"""What fluxkern's closure optimizers share: flat views of the parameters and gradients, and the
start of a step (one closure evaluation and its flat gradient)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["FlatParams"]


class FlatParams:
    """Mixin for an Optimizer with one parameter group whose list is ``self._params``.

    ``flat_dtype`` (None: the parameters' own) is the dtype of the flat gradient; steps are
    cast back to each parameter's dtype when added.
    """

    _params: list[Tensor]
    param_groups: list[dict[str, Any]]
    state: Any
    flat_dtype: torch.dtype | None = None

    def _flat_grad(self) -> Tensor:
        views = [
            p.new_zeros(p.numel()) if p.grad is None else p.grad.reshape(-1) for p in self._params
        ]
        flat = torch.cat(views, 0)  # [P]
        return flat if self.flat_dtype is None else flat.to(self.flat_dtype)

    def _add_grad(self, step: float, direction: Tensor) -> None:
        offset = 0
        for p in self._params:
            n = p.numel()
            p.add_(direction[offset : offset + n].view_as(p).to(p.dtype), alpha=step)
            offset += n

    def _begin_step(
        self, closure: Callable[[], Tensor]
    ) -> tuple[dict[str, Any], dict[str, Any], Tensor, float, Tensor]:
        """Evaluates the closure once at the current parameters.

        Returns:
            (the parameter group, the optimizer state, the closure's loss tensor, its value,
            the flat gradient [P]); the state's func_evals counts the evaluation.
        """
        group = self.param_groups[0]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        with torch.enable_grad():
            orig_loss = closure()
        loss = float(orig_loss.detach())
        state["func_evals"] += 1
        return group, state, orig_loss, loss, self._flat_grad()
