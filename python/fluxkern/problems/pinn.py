"""Helpers for the second-order PINN baselines: derivatives by autograd and the penalty loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["grad", "laplacian", "penalty_loss"]


def grad(u: Tensor, x: Tensor) -> Tensor:
    """du/dx [N, d] of a per-point scalar u [N], keeping the graph for higher derivatives."""
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    return g


def laplacian(u: Tensor, x: Tensor, dims: Sequence[int] | None = None) -> Tensor:
    """Sum of second derivatives of u [N] over the input columns `dims` (default all)."""
    g = grad(u, x)
    dims = range(x.shape[1]) if dims is None else dims
    return sum(grad(g[:, j], x)[:, j] for j in dims)


def penalty_loss(
    residuals: Sequence[Tensor],
    conditions: Sequence[Tensor],
    weights: Sequence[float] | None = None,
) -> Tensor:
    """mean(r^2) summed over PDE residuals plus w_k mean(c_k^2) over condition residuals."""
    weights = [1.0] * len(conditions) if weights is None else list(weights)
    loss = sum((r * r).mean() for r in residuals)
    return loss + sum(w * (c * c).mean() for w, c in zip(weights, conditions, strict=True))
