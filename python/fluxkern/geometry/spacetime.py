"""Space-time domains: :class:`TimeProduct` (``space x [t0, t1]``, time the last coordinate)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fluxkern.geometry._checks import _F64, _as_float, _check_points, _finish
from fluxkern.geometry.base import Domain

__all__ = ["TimeProduct"]


class TimeProduct(Domain):
    """Space-time domain ``space x [t0, t1]``; points are ``(x_1, ..., x_d, t)``.

    The faces are the space faces times ``[t0, t1]`` (same names, normals with a zero time
    component); the slices ``t = t0`` and ``t = t1`` are not faces, use :meth:`sample_initial`.
    On a face the unit coordinates are the space face's coordinates followed by time.

    Args:
        space: Spatial domain (not itself a :class:`TimeProduct`).
        t0: Initial time.
        t1: Final time, ``t1 > t0``.
    """

    def __init__(self, space: Domain, t0: float, t1: float) -> None:
        if not isinstance(space, Domain) or isinstance(space, TimeProduct):
            raise ValueError(f"space must be a spatial Domain, got {space!r}")
        t0_f, t1_f = _as_float(t0, "t0"), _as_float(t1, "t1")
        if not t0_f < t1_f:
            raise ValueError(f"TimeProduct needs t0 < t1, got t0={t0_f}, t1={t1_f}")
        self.space = space
        self.t0 = t0_f
        self.t1 = t1_f
        self.dim = space.dim + 1

    def __repr__(self) -> str:
        return f"TimeProduct({self.space!r}, {self.t0}, {self.t1})"

    @property
    def _is_box(self) -> bool:
        return self.space._is_box

    def bounds(self) -> tuple[Tensor, Tensor]:
        """Space bounding box with ``[t0, t1]`` appended."""
        lo, hi = self.space.bounds()
        return (
            torch.cat([lo, torch.tensor([self.t0], dtype=_F64)]),
            torch.cat([hi, torch.tensor([self.t1], dtype=_F64)]),
        )

    def volume(self) -> float:
        """Space volume times ``t1 - t0``."""
        return self.space.volume() * (self.t1 - self.t0)

    def _time_ok(self, t: Tensor, tol: float) -> Tensor:
        return (t >= self.t0 - tol) & (t <= self.t1 + tol)

    def contains(self, points: Tensor, tol: float = 1e-12) -> Tensor:
        """Space part in ``space`` and time in ``[t0, t1]``, both within ``tol``."""
        p = _check_points(points, self.dim)
        return self.space.contains(p[:, :-1], tol) & self._time_ok(p[:, -1], tol)

    def on_boundary(self, points: Tensor, tol: float = 1e-9) -> Tensor:
        """On the lateral boundary ``boundary(space) x [t0, t1]`` (not the time slices)."""
        p = _check_points(points, self.dim)
        return self.space.on_boundary(p[:, :-1], tol) & self._time_ok(p[:, -1], tol)

    def faces(self) -> list[str]:
        """The space faces."""
        return self.space.faces()

    def _face_key(self, name: str) -> Any:
        try:
            return self.space._face_key(name)
        except ValueError:
            raise self._unknown_face(name) from None

    def face_measure(self, name: str) -> float:
        """Space face measure times ``t1 - t0``."""
        return self.space.face_measure(name) * (self.t1 - self.t0)

    def _face_periodic(self, key: Any) -> tuple[bool, ...]:
        return self.space._face_periodic(key) + (False,)

    def _face_map(self, key: Any, u: Tensor) -> tuple[Tensor, Tensor]:
        xs, ns = self.space._face_map(key, u[:, :-1])
        t = torch.clamp(self.t0 + u[:, -1:] * (self.t1 - self.t0), max=self.t1)
        return torch.cat([xs, t], dim=1), torch.cat([ns, torch.zeros_like(t)], dim=1)

    def sample_initial(
        self,
        n: int,
        method: str = "sobol",
        seed: int = 0,
        dtype: torch.dtype = _F64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Points of ``space x {t0}``: ``space.sample_interior(n, ...)`` with ``t = t0`` appended.

        Args:
            n: Number of points.
            method: ``"sobol"`` or ``"uniform"``.
            seed: Seed.
            dtype: Floating dtype of the result.
            device: Device of the result.

        Returns:
            ``[n, dim]`` tensor whose last column is ``t0``.
        """
        x = self.space.sample_interior(n, method, seed, dtype=_F64)
        t = torch.full((x.shape[0], 1), self.t0, dtype=_F64)
        return _finish(torch.cat([x, t], dim=1), dtype, device)
