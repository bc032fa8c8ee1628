"""Matched points on opposite faces of a box, for periodic conditions: :func:`periodic_pairs`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fluxkern.geometry._checks import _F64, _check_int, _finish
from fluxkern.geometry.base import Domain
from fluxkern.geometry.boxes import Box
from fluxkern.geometry.spacetime import TimeProduct

__all__ = ["periodic_pairs"]


def periodic_pairs(
    domain: Domain,
    axis: int,
    n: int | Sequence[int],
    method: str = "sobol",
    seed: int = 0,
    dtype: torch.dtype = _F64,
    device: torch.device | str | None = None,
    *,
    corners: bool = True,
) -> tuple[Tensor, Tensor]:
    """Matched points on the two opposite faces of a box along ``axis``.

    Args:
        domain: A :class:`Box` (incl. :class:`Interval`, :class:`Rectangle`) or a
            :class:`TimeProduct` of one (``axis = dim - 1`` is time).
        axis: Axis index (negative counts from the end).
        n: Number of pairs (a tuple of per-axis counts for ``"grid"`` on >= 2 free axes).
        method: ``"sobol"``, ``"uniform"`` or ``"grid"``, over the other coordinates.
        seed: Seed.
        dtype: Floating dtype of the result.
        device: Device of the result.
        corners: For ``"grid"``: include the ends of the other axes.

    Returns:
        ``(first, second)``, both ``[n, dim]``: equal except column ``axis``, which is
        ``lo[axis]`` in ``first`` and ``hi[axis]`` in ``second``.
    """
    if isinstance(domain, Box):
        box = domain
    elif isinstance(domain, TimeProduct) and isinstance(domain.space, Box):
        box = Box(*domain.bounds())
    else:
        raise ValueError(
            f"periodic_pairs needs a Box (Interval, Rectangle) or a TimeProduct of one, "
            f"got {domain!r}"
        )
    ax = _check_int(axis, "axis")
    if not -box.dim <= ax < box.dim:
        raise ValueError(f"axis must be in [{-box.dim}, {box.dim - 1}], got {ax}")
    ax %= box.dim
    first, _ = box.sample_face(f"x{ax}-", n, method, seed, dtype=_F64, corners=corners)
    second = first.clone()
    second[:, ax] = box.hi[ax]
    return _finish(first, dtype, device), _finish(second, dtype, device)
