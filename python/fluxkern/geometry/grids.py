"""Uniform tensor-product grids over a box: :func:`grid` and :func:`grid_with_axes`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from fluxkern.geometry._checks import _F64, _as_vector, _check_dtype, _check_int, _finish
from fluxkern.geometry.base import Domain
from fluxkern.geometry.boxes import Box

__all__ = ["grid", "grid_with_axes"]


def _resolve_bounds(domain_or_bounds: Any) -> tuple[Tensor, Tensor]:
    if isinstance(domain_or_bounds, Domain):
        return domain_or_bounds.bounds()
    try:
        lo, hi = domain_or_bounds
    except (TypeError, ValueError):
        raise ValueError(
            f"expected a Domain or a (lo, hi) pair, got {domain_or_bounds!r}"
        ) from None
    box = Box(_as_vector(lo, "lo"), _as_vector(hi, "hi"))
    return box.lo, box.hi


def grid_with_axes(
    domain_or_bounds: Domain | tuple[Any, Any],
    shape: int | Sequence[int],
    *,
    endpoint: bool | Sequence[bool] = True,
    dtype: torch.dtype = _F64,
    device: torch.device | str | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """Uniform tensor-product grid over a box, with its per-axis coordinates.

    Args:
        domain_or_bounds: A :class:`Domain` (its bounding box is used; mask with
            ``domain.contains`` for non-box domains) or a ``(lo, hi)`` pair of numbers or
            sequences.
        shape: Points per axis: an int (same for every axis) or one int per axis.
        endpoint: Per axis (or one bool for all): True gives ``linspace(lo, hi, m)`` (both ends
            included; ``m = 1`` gives ``lo``), False gives ``lo + k (hi - lo) / m``,
            ``k = 0..m-1`` (like ``arange``, for periodic axes).
        dtype: Floating dtype of the result.
        device: Device of the result.

    Returns:
        ``(points, axes)``: ``points`` is ``[prod(shape), dim]`` in ``meshgrid(indexing="ij")``
        order (the last axis varies fastest), so ``f(points).reshape(*shape)`` puts axis ``i``
        of the grid on tensor dimension ``i``; ``axes[i]`` is the ``[shape[i]]`` coordinate
        vector of axis ``i``.
    """
    _check_dtype(dtype)
    lo, hi = _resolve_bounds(domain_or_bounds)
    d = lo.numel()
    if isinstance(shape, (tuple, list, torch.Size)):
        if len(shape) != d:
            raise ValueError(f"shape must have {d} entries (one per axis), got {tuple(shape)}")
        counts = [_check_int(s, "shape", 0) for s in shape]
    else:
        counts = [_check_int(shape, "shape", 0)] * d
    if isinstance(endpoint, bool):
        ends = [endpoint] * d
    else:
        ends = [bool(e) for e in endpoint]
        if len(ends) != d:
            raise ValueError(f"endpoint must be a bool or have {d} entries, got {len(ends)}")
    axes = []
    for i in range(d):
        m = counts[i]
        if ends[i]:
            a = torch.linspace(float(lo[i]), float(hi[i]), m, dtype=_F64)
        else:
            a = lo[i] + torch.arange(m, dtype=_F64) * ((hi[i] - lo[i]) / m)
        axes.append(a)
    mesh = torch.meshgrid(*axes, indexing="ij")
    pts = torch.stack([g.reshape(-1) for g in mesh], dim=1)
    return _finish(pts, dtype, device), [_finish(a, dtype, device) for a in axes]


def grid(
    domain_or_bounds: Domain | tuple[Any, Any],
    shape: int | Sequence[int],
    *,
    endpoint: bool | Sequence[bool] = True,
    dtype: torch.dtype = _F64,
    device: torch.device | str | None = None,
) -> Tensor:
    """Uniform grid points ``[prod(shape), dim]``; see :func:`grid_with_axes`."""
    return grid_with_axes(domain_or_bounds, shape, endpoint=endpoint, dtype=dtype, device=device)[0]
