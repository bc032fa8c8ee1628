"""Curved 2-d domains: :class:`Disk` and :class:`StarDomain` (``r = radius_fn(theta)``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from fluxkern.geometry._checks import (
    _F64,
    _TWO_PI,
    _as_float,
    _as_vector,
    _check_int,
    _check_points,
)
from fluxkern.geometry.base import Domain

__all__ = ["Disk", "StarDomain"]


class Disk(Domain):
    """Closed disk ``|x - center| <= radius``.

    One face, ``"boundary"``, parametrised by angle (uniform in angle = uniform in arc length):
    the unit coordinate ``u`` maps to angle ``2 pi u`` from the +x axis, counter-clockwise; the
    outward normal is ``(p - center) / radius``.

    Args:
        center: ``(x, y)``.
        radius: ``> 0``.
    """

    def __init__(self, center: Sequence[float] | Tensor, radius: float) -> None:
        self.center = _as_vector(center, "center", 2)
        r = _as_float(radius, "radius")
        if not r > 0:
            raise ValueError(f"radius must be > 0, got {r}")
        self.radius = r
        self.dim = 2

    def __repr__(self) -> str:
        return f"Disk(center={self.center.tolist()}, radius={self.radius})"

    def bounds(self) -> tuple[Tensor, Tensor]:
        """``center -/+ radius``."""
        return self.center - self.radius, self.center + self.radius

    def volume(self) -> float:
        """``pi r^2``."""
        return math.pi * self.radius**2

    def contains(self, points: Tensor, tol: float = 1e-12) -> Tensor:
        """``|p - center| <= radius + tol``."""
        p = _check_points(points, 2)
        return torch.linalg.vector_norm(p - self.center.to(p), dim=1) <= self.radius + tol

    def on_boundary(self, points: Tensor, tol: float = 1e-9) -> Tensor:
        """``| |p - center| - radius | <= tol``."""
        p = _check_points(points, 2)
        rho = torch.linalg.vector_norm(p - self.center.to(p), dim=1)
        return (rho - self.radius).abs() <= tol

    def faces(self) -> list[str]:
        """``["boundary"]``."""
        return ["boundary"]

    def _face_key(self, name: str) -> str:
        if name != "boundary":
            raise self._unknown_face(name)
        return name

    def face_measure(self, name: str) -> float:
        """Circumference ``2 pi r``."""
        self._face_key(name)
        return _TWO_PI * self.radius

    def _face_periodic(self, key: Any) -> tuple[bool, ...]:
        return (True,)

    def _face_map(self, key: Any, u: Tensor) -> tuple[Tensor, Tensor]:
        theta = _TWO_PI * u[:, 0]
        nrm = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
        return self.center + self.radius * nrm, nrm


class StarDomain(Domain):
    """Domain bounded by the closed curve ``center + radius_fn(theta) (cos theta, sin theta)``.

    ``radius_fn`` maps a float64 tensor of angles to a tensor of positive radii of the same
    shape, elementwise, and must be ``2 pi``-periodic; it is written with torch ops (e.g.
    ``lambda t: 1 + 0.3 * torch.cos(5 * t)``). Derivatives come from autograd (exact); if the
    output does not track gradients, a central finite difference is used.

    One face, ``"boundary"``, parametrised by **arc length**: the unit coordinate ``u`` maps to
    the point a fraction ``u`` of the perimeter counter-clockwise from ``theta = 0``. Points lie
    exactly on the curve; their density is uniform in arc length up to the interpolation error
    of an ``n_quad``-point arc-length table (relative ``O(n_quad^-2)``). The outward unit normal
    is the tangent ``d/dtheta`` rotated clockwise.

    ``contains(p)``: ``|p - center| <= radius_fn(theta(p)) + tol`` (``tol`` is radial), with
    ``theta(p)`` in ``[0, 2 pi)``.

    Args:
        radius_fn: Callable ``Tensor -> Tensor``, ``r(theta) > 0``.
        center: ``(x, y)``.
        n_quad: Number of angles of the arc-length / area / bounding-box tables (>= 16).

    Raises:
        ValueError: If ``radius_fn`` is not positive, not finite, not elementwise or not
            periodic on the table.
    """

    def __init__(
        self,
        radius_fn: Callable[[Tensor], Tensor],
        center: Sequence[float] | Tensor = (0.0, 0.0),
        n_quad: int = 4096,
    ) -> None:
        if not callable(radius_fn):
            raise ValueError(f"radius_fn must be callable, got {radius_fn!r}")
        self.radius_fn = radius_fn
        self.center = _as_vector(center, "center", 2)
        self.n_quad = _check_int(n_quad, "n_quad", 16)
        self.dim = 2
        h = _TWO_PI / self.n_quad
        theta = torch.arange(self.n_quad + 1, dtype=_F64) * h
        theta[-1] = _TWO_PI
        r, dr = self._radius_and_derivative(theta)
        if not bool(torch.isfinite(r).all() & torch.isfinite(dr).all()):
            raise ValueError("radius_fn must be finite (with a finite derivative) for every angle")
        k = int(torch.argmin(r))
        if not r[k] > 0:
            raise ValueError(
                f"radius_fn must be > 0 for every angle, got r({theta[k].item():.6g}) = "
                f"{r[k].item():.6g}"
            )
        rmax = float(r.max())
        if abs(float(r[0] - r[-1])) > 1e-9 * max(1.0, rmax):
            raise ValueError(
                f"radius_fn must be 2*pi-periodic, got r(0) = {r[0].item():.12g} and "
                f"r(2*pi) = {r[-1].item():.12g}"
            )
        speed = torch.sqrt(r * r + dr * dr)
        self._theta_tab = theta
        self._h = h
        self._cum = torch.cat(
            [torch.zeros(1, dtype=_F64), torch.cumsum(0.5 * (speed[1:] + speed[:-1]) * h, 0)]
        )
        self._perimeter = float(self._cum[-1])
        self._area = 0.5 * float((r[:-1] ** 2).sum()) * h
        self._lo, self._hi = self._tight_bounds(theta[:-1], r[:-1])

    def __repr__(self) -> str:
        name = getattr(self.radius_fn, "__name__", type(self.radius_fn).__name__)
        return f"StarDomain({name}, center={self.center.tolist()})"

    def _radius(self, theta: Tensor) -> Tensor:
        r = self.radius_fn(theta)
        if not isinstance(r, Tensor):
            r = torch.as_tensor(r, dtype=theta.dtype, device=theta.device)
        if r.shape != theta.shape:
            if r.numel() == 1:
                r = r.reshape(()).expand(theta.shape)
            else:
                raise ValueError(
                    f"radius_fn must return a tensor shaped like its input {list(theta.shape)}, "
                    f"got {list(r.shape)}"
                )
        return r.to(theta.dtype)

    def _radius_and_derivative(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        with torch.inference_mode(False), torch.enable_grad():
            th = theta.detach().clone().requires_grad_(True)
            r = self._radius(th)
            if r.requires_grad:
                (dr,) = torch.autograd.grad(r.sum(), th, allow_unused=True)
                if dr is None:
                    dr = torch.zeros_like(th)
                return r.detach(), dr.detach()
        with torch.no_grad():
            eps = 6e-6
            r = self._radius(theta)
            dr = (self._radius(theta + eps) - self._radius(theta - eps)) / (2.0 * eps)
        return r, dr

    def _curve(self, theta: Tensor, r: Tensor) -> Tensor:
        return self.center + r[:, None] * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)

    def _tight_bounds(self, theta: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        pts = self._curve(theta, r)
        lo, hi = pts.min(0).values.clone(), pts.max(0).values.clone()
        for axis in range(2):
            for sign in (-1.0, 1.0):
                th = float(theta[int(torch.argmax(sign * pts[:, axis]))])
                w = self._h
                best = sign * float(pts[:, axis].max() if sign > 0 else pts[:, axis].min())
                for _ in range(3):
                    cand = th + torch.linspace(-w, w, 257, dtype=_F64)
                    with torch.no_grad():
                        vals = sign * self._curve(cand, self._radius(cand))[:, axis]
                    k = int(torch.argmax(vals))
                    if float(vals[k]) > best:
                        best = float(vals[k])
                    th = float(cand[k])
                    w = w / 128.0
                if sign > 0:
                    hi[axis] = best
                else:
                    lo[axis] = -best
        return lo, hi

    def bounds(self) -> tuple[Tensor, Tensor]:
        """Tight bounding box of the curve (refined around the table's extremes)."""
        return self._lo.clone(), self._hi.clone()

    def volume(self) -> float:
        """Area ``1/2 int r^2 dtheta`` (periodic trapezoid rule on ``n_quad`` angles)."""
        return self._area

    def perimeter(self) -> float:
        """Length of the boundary curve."""
        return self._perimeter

    def _polar(self, p: Tensor) -> tuple[Tensor, Tensor]:
        d = p - self.center.to(p)
        rho = torch.linalg.vector_norm(d, dim=1)
        theta = torch.remainder(torch.atan2(d[:, 1], d[:, 0]), _TWO_PI)
        with torch.no_grad():
            r = self._radius(theta)
        return rho, r

    def contains(self, points: Tensor, tol: float = 1e-12) -> Tensor:
        """``|p - center| <= r(theta(p)) + tol``."""
        p = _check_points(points, 2)
        rho, r = self._polar(p)
        return rho <= r + tol

    def on_boundary(self, points: Tensor, tol: float = 1e-9) -> Tensor:
        """``| |p - center| - r(theta(p)) | <= tol`` (radial distance)."""
        p = _check_points(points, 2)
        rho, r = self._polar(p)
        return (rho - r).abs() <= tol

    def faces(self) -> list[str]:
        """``["boundary"]``."""
        return ["boundary"]

    def _face_key(self, name: str) -> str:
        if name != "boundary":
            raise self._unknown_face(name)
        return name

    def face_measure(self, name: str) -> float:
        """Perimeter."""
        self._face_key(name)
        return self._perimeter

    def _face_periodic(self, key: Any) -> tuple[bool, ...]:
        return (True,)

    def theta_of_arclength(self, s: Tensor) -> Tensor:
        """Angles at arc length ``s`` (in ``[0, perimeter]``) from ``theta = 0``, CCW."""
        s = torch.as_tensor(s, dtype=_F64)
        j = torch.searchsorted(self._cum, s, right=True) - 1
        j = j.clamp(0, self.n_quad - 1)
        c0, c1 = self._cum[j], self._cum[j + 1]
        frac = ((s - c0) / (c1 - c0)).clamp(0.0, 1.0)
        return self._theta_tab[j] + frac * self._h

    def _face_map(self, key: Any, u: Tensor) -> tuple[Tensor, Tensor]:
        theta = self.theta_of_arclength(u[:, 0] * self._perimeter)
        r, dr = self._radius_and_derivative(theta)
        c, s = torch.cos(theta), torch.sin(theta)
        pts = self.center + r[:, None] * torch.stack([c, s], dim=1)
        tx, ty = dr * c - r * s, dr * s + r * c
        nrm = torch.stack([ty, -tx], dim=1) / torch.sqrt(tx * tx + ty * ty)[:, None]
        return pts, nrm
