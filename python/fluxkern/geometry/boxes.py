"""Axis-aligned boxes: :class:`Box` of any dimension, :class:`Interval` and :class:`Rectangle`."""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import Tensor

from fluxkern.geometry._checks import _F64, _as_float, _as_vector, _check_points
from fluxkern.geometry._sampling import _to_box
from fluxkern.geometry.base import Domain

__all__ = ["Box", "Interval", "Rectangle"]

_GENERIC_FACE = re.compile(r"^x(\d+)([+-])$")
_NAMED_FACES = {"left": (0, 0), "right": (0, 1), "bottom": (1, 0), "top": (1, 1)}


class Box(Domain):
    """Axis-aligned box ``[lo_0, hi_0] x ... x [lo_{d-1}, hi_{d-1}]``.

    Faces are named ``"x{i}-"`` (``x_i = lo_i``, normal ``-e_i``) and ``"x{i}+"``
    (``x_i = hi_i``, normal ``+e_i``), ordered ``x0-, x0+, x1-, ...``. Boxes of dimension 1
    and 2 also accept ``"left"``/``"right"`` (axis 0) and ``"bottom"``/``"top"`` (axis 1).
    A face's free coordinates keep their axis order.

    Args:
        lo: Lower corner, ``dim`` numbers.
        hi: Upper corner, ``dim`` numbers, ``hi > lo`` on every axis.

    Raises:
        ValueError: If the corners differ in length, are not finite, or ``lo >= hi`` somewhere.
    """

    def __init__(self, lo: Sequence[float] | Tensor, hi: Sequence[float] | Tensor) -> None:
        lo_t = _as_vector(lo, "lo")
        hi_t = _as_vector(hi, "hi")
        if lo_t.numel() != hi_t.numel():
            raise ValueError(
                f"lo and hi must have the same length, got {lo_t.numel()} and {hi_t.numel()}"
            )
        for i in range(lo_t.numel()):
            if not lo_t[i] < hi_t[i]:
                raise ValueError(
                    f"need lo < hi on every axis; axis {i} has lo={lo_t[i].item()} >= "
                    f"hi={hi_t[i].item()}"
                )
        self.lo = lo_t
        self.hi = hi_t
        self.dim = lo_t.numel()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lo={self.lo.tolist()}, hi={self.hi.tolist()})"

    @property
    def _is_box(self) -> bool:
        return True

    def bounds(self) -> tuple[Tensor, Tensor]:
        """Bounding box ``(lo, hi)`` (the box itself)."""
        return self.lo.clone(), self.hi.clone()

    def volume(self) -> float:
        """Product of the side lengths."""
        return float(torch.prod(self.hi - self.lo))

    def contains(self, points: Tensor, tol: float = 1e-12) -> Tensor:
        """``lo - tol <= x <= hi + tol`` on every axis; see :meth:`Domain.contains`."""
        p = _check_points(points, self.dim)
        lo, hi = self.lo.to(p), self.hi.to(p)
        return ((p >= lo - tol) & (p <= hi + tol)).all(dim=1)

    def on_boundary(self, points: Tensor, tol: float = 1e-9) -> Tensor:
        """Inside (within ``tol``) and within ``tol`` of some face."""
        p = _check_points(points, self.dim)
        lo, hi = self.lo.to(p), self.hi.to(p)
        near = ((p - lo).abs() <= tol) | ((p - hi).abs() <= tol)
        return self.contains(p, tol) & near.any(dim=1)

    def _canonical_names(self) -> list[str]:
        return [f"x{i}{s}" for i in range(self.dim) for s in "-+"]

    def faces(self) -> list[str]:
        """Face names, two per axis (low side first)."""
        return self._canonical_names()

    def _face_key(self, name: str) -> tuple[int, int]:
        if isinstance(name, str):
            m = _GENERIC_FACE.match(name)
            if m is not None and int(m.group(1)) < self.dim:
                return int(m.group(1)), int(m.group(2) == "+")
            if name in _NAMED_FACES and self.dim <= 2 and _NAMED_FACES[name][0] < self.dim:
                return _NAMED_FACES[name]
        raise self._unknown_face(name)

    def face_measure(self, name: str) -> float:
        """Product of the side lengths along the face (1 for a point face)."""
        axis, _ = self._face_key(name)
        ext = torch.cat(
            [self.hi[:axis] - self.lo[:axis], self.hi[axis + 1 :] - self.lo[axis + 1 :]]
        )
        return float(torch.prod(ext)) if ext.numel() else 1.0

    def _face_map(self, key: tuple[int, int], u: Tensor) -> tuple[Tensor, Tensor]:
        axis, side = key
        n = u.shape[0]
        free = [i for i in range(self.dim) if i != axis]
        pts = torch.empty(n, self.dim, dtype=_F64)
        if free:
            pts[:, free] = _to_box(u, self.lo[free], self.hi[free])
        pts[:, axis] = self.hi[axis] if side else self.lo[axis]
        nrm = torch.zeros(n, self.dim, dtype=_F64)
        nrm[:, axis] = 1.0 if side else -1.0
        return pts, nrm


class Interval(Box):
    """Interval ``[a, b]``; faces ``"left"`` (x = a, normal -1) and ``"right"`` (x = b, +1).

    Args:
        a: Left end.
        b: Right end, ``b > a``.
    """

    def __init__(self, a: float, b: float) -> None:
        a_f, b_f = _as_float(a, "a"), _as_float(b, "b")
        if not a_f < b_f:
            raise ValueError(f"Interval needs a < b, got a={a_f}, b={b_f}")
        super().__init__([a_f], [b_f])
        self.a = a_f
        self.b = b_f

    def __repr__(self) -> str:
        return f"Interval({self.a}, {self.b})"

    def _canonical_names(self) -> list[str]:
        return ["left", "right"]


class Rectangle(Box):
    """Rectangle ``[lo_0, hi_0] x [lo_1, hi_1]`` (a 2-d :class:`Box`).

    Faces ``"left"`` (x = lo_0), ``"right"`` (x = hi_0), ``"bottom"`` (y = lo_1) and ``"top"``
    (y = hi_1); the generic names ``"x0-"`` ... ``"x1+"`` are accepted too.

    Args:
        lo: Lower-left corner ``(x, y)``.
        hi: Upper-right corner ``(x, y)``.
    """

    def __init__(self, lo: Sequence[float] | Tensor, hi: Sequence[float] | Tensor) -> None:
        super().__init__(_as_vector(lo, "lo", 2), _as_vector(hi, "hi", 2))

    def _canonical_names(self) -> list[str]:
        return ["left", "right", "bottom", "top"]
