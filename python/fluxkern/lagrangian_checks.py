"""The checks of :class:`fluxkern.lagrangian.AugmentedLagrangian`: its blocks
(:func:`_check_terms`: Objective and Constraint blocks with unique names) and a parameter's hooks
(:func:`_hooks_on`: whether :meth:`~fluxkern.lagrangian.AugmentedLagrangian.evaluate` may take its
route without autograd)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from fluxkern.blocks import Block, Constraint, Objective

__all__ = ["_check_terms", "_hooks_on"]


def _check_terms(terms: Sequence[Block]) -> None:
    """Raises TypeError or ValueError unless terms are Objective/Constraint blocks with unique
    names."""
    for t in terms:
        if not isinstance(t, (Objective, Constraint)):
            raise TypeError(f"terms must be Objective or Constraint, got {type(t).__name__}")
    names = [t.name for t in terms]
    if len(set(names)) != len(names):
        raise ValueError(f"block names must be unique, got {names}")
    if not any(isinstance(t, (Objective, Constraint)) for t in terms):
        raise ValueError("give at least one Objective or Constraint")


def _hooks_on(p: Tensor) -> bool:
    """Whether a parameter has hooks that a backward would run: ones registered with
    ``Tensor.register_hook`` or ``Tensor.register_post_accumulate_grad_hook``.

    torch has no public query for those; its Tensor keeps them in the attributes read here (see
    torch/_tensor.py). This is the one place fluxkern reads private torch state, so that
    :meth:`AugmentedLagrangian.evaluate`'s route without autograd never skips a user's hook.
    Hooks on the parameter's gradient accumulator node (e.g. those of
    torch.nn.parallel.DistributedDataParallel's reducer) are not seen here: fluxkern's
    distributed training all-reduces the gradients itself and does not use DDP.
    """
    return bool(
        getattr(p, "_backward_hooks", None) or getattr(p, "_post_accumulate_grad_hooks", None)
    )
