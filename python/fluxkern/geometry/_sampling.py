"""Seeds and samplers of the unit cube, the raw material of every domain's samplers.

Seed mixing (:func:`_derive_seed`), seeded Sobol / uniform points in ``[0, 1)^k``
(:func:`_unit`), evenly spaced points (:func:`_grid_counts`, :func:`_grid_unit`), the
largest-remainder split of a count over faces (:func:`_allocate`) and the affine map onto a
box (:func:`_to_box`). Everything is float64 on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from fluxkern.geometry._checks import _F64, _check_int, _check_n

__all__: list[str] = []

_MASK64 = (1 << 64) - 1


def _derive_seed(seed: int, key: int) -> int:
    """A seed in [0, 2**63) mixed from (seed, key) with splitmix64."""
    z = (seed * 0x9E3779B97F4A7C15 + (key + 1) * 0xD1B54A32D192ED03) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1


def _unit(n: int, k: int, method: str, seed: int) -> Tensor:
    """``[n, k]`` float64 CPU points in the unit cube [0, 1)^k."""
    if n == 0 or k == 0:
        return torch.zeros(n, k, dtype=_F64)
    if method == "sobol":
        engine = torch.quasirandom.SobolEngine(k, scramble=True, seed=seed)
        return engine.draw(n, dtype=_F64)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    return torch.rand(n, k, generator=gen, dtype=_F64)


def _grid_counts(n: Any, k: int) -> tuple[int, ...]:
    """Per-axis counts of a grid of ``n`` points on a ``k``-dimensional face."""
    if isinstance(n, (tuple, list)):
        if len(n) != k:
            raise ValueError(
                f"method 'grid' on a {k}-dimensional face needs {k} per-axis counts, got {tuple(n)}"
            )
        return tuple(_check_int(c, "n", 0) for c in n)
    n = _check_n(n)
    if k <= 1:
        return (n,) * k
    m = round(n ** (1.0 / k))
    for cand in (m - 1, m, m + 1):
        if cand >= 0 and cand**k == n:
            return (cand,) * k
    raise ValueError(
        f"method 'grid' on a {k}-dimensional face needs n to be a perfect {k}-th power or a "
        f"tuple of {k} per-axis counts, got n={n}"
    )


def _grid_unit(
    n: int, counts: tuple[int, ...], corners: bool, periodic: tuple[bool, ...]
) -> Tensor:
    """Evenly spaced ``[prod(counts), k]`` points of the unit cube (``[n, 0]`` when k = 0)."""
    if not counts:
        return torch.zeros(n, 0, dtype=_F64)
    axes = []
    for c, per in zip(counts, periodic, strict=True):
        if per:
            axes.append(torch.arange(c, dtype=_F64) / c)
        elif corners:
            axes.append(
                torch.linspace(0.0, 1.0, c, dtype=_F64)
                if c > 1
                else torch.full((c,), 0.5, dtype=_F64)
            )
        else:
            axes.append((torch.arange(c, dtype=_F64) + 0.5) / c)
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1)


def _allocate(n: int, weights: Sequence[float]) -> list[int]:
    """Split ``n`` into integer counts proportional to ``weights`` (largest remainder)."""
    total = float(sum(weights))
    quotas = [n * w / total for w in weights]
    counts = [math.floor(q) for q in quotas]
    rest = n - sum(counts)
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[:rest]:
        counts[i] += 1
    return counts


def _to_box(u: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    return torch.minimum(lo + u * (hi - lo), hi)
