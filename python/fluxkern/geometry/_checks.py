"""Argument checks and constants shared by the geometry modules.

Validation of ints, counts, method names, dtypes, vectors, numbers, seeds and point tensors,
plus :func:`_finish` (the final cast of float64 CPU points to the requested dtype and device).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "BOUNDARY_METHODS",
    "INTERIOR_METHODS",
]

_F64 = torch.float64
_TWO_PI = 2.0 * math.pi
INTERIOR_METHODS = ("sobol", "uniform")
BOUNDARY_METHODS = ("sobol", "uniform", "grid")


def _check_int(value: Any, name: str, minimum: int | None = None) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        out = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return out


def _check_n(n: Any) -> int:
    return _check_int(n, "n", 0)


def _check_method(method: Any, valid: Sequence[str]) -> str:
    if method not in valid:
        choices = ", ".join(repr(v) for v in valid)
        raise ValueError(f"unknown method {method!r}; valid methods: {choices}")
    return method


def _check_dtype(dtype: Any) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    return dtype


def _as_vector(value: Any, name: str, length: int | None = None) -> Tensor:
    """A finite float64 CPU vector from a scalar, sequence, array or tensor."""
    try:
        t = torch.as_tensor(value, dtype=_F64).detach().to("cpu").reshape(-1).clone()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"{name} must be a number or a sequence of numbers, got {value!r}"
        ) from err
    if length is not None and t.numel() != length:
        raise ValueError(f"{name} must have {length} entries, got {t.numel()}")
    if t.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {t.tolist()}")
    return t


def _as_float(value: Any, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number, got {value!r}") from err
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


def _normalise_seed(seed: Any) -> int:
    return _check_int(seed, "seed") % (1 << 63)


def _work_dtype(t: Tensor) -> torch.dtype:
    # float64 everywhere except on backends without it (MPS).
    return torch.float32 if t.device.type == "mps" else _F64


def _check_points(points: Any, dim: int) -> Tensor:
    """Validate a ``[N, dim]`` point tensor; returns it in the working precision."""
    if not isinstance(points, Tensor):
        points = torch.as_tensor(points, dtype=_F64)
    if points.dim() != 2 or points.shape[1] != dim:
        raise ValueError(f"points must have shape [N, {dim}], got {list(points.shape)}")
    if not (points.dtype.is_floating_point or points.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"points must be a real tensor, got dtype {points.dtype}")
    return points.to(_work_dtype(points))


def _finish(points: Tensor, dtype: torch.dtype, device: Any) -> Tensor:
    return points.to(device=device, dtype=dtype)
