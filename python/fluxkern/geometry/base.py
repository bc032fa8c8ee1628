"""The abstract :class:`Domain`: the geometry interface and the samplers built on it.

Subclasses provide the geometry (bounding box, membership, faces and a measure-preserving map
from the unit cube onto each face); :class:`Domain` turns it into ``sample_interior`` (direct
for boxes, rejection from the bounding box otherwise), ``sample_face``, ``sample_boundary`` and
``mean_std``.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from fluxkern.geometry._checks import (
    _F64,
    BOUNDARY_METHODS,
    INTERIOR_METHODS,
    _check_dtype,
    _check_method,
    _check_n,
    _finish,
    _normalise_seed,
)
from fluxkern.geometry._sampling import (
    _allocate,
    _derive_seed,
    _grid_counts,
    _grid_unit,
    _to_box,
    _unit,
)

__all__ = ["Domain"]


class Domain(abc.ABC):
    """Abstract domain in ``dim`` dimensions with interior and boundary samplers.

    Subclasses implement the geometry (``bounds``, ``contains``, ``on_boundary``, ``faces``,
    ``face_measure``, ``volume`` and a measure-preserving map from the unit cube onto each face);
    this class provides the samplers on top of it.

    Attributes:
        dim: Number of coordinates of a point.
    """

    dim: int

    # ---- geometry (abstract) ----------------------------------------------------------------

    @abc.abstractmethod
    def bounds(self) -> tuple[Tensor, Tensor]:
        """Bounding box of the domain.

        Returns:
            ``(lo, hi)``, float64 CPU tensors of shape ``[dim]``.
        """

    @abc.abstractmethod
    def contains(self, points: Tensor, tol: float = 1e-12) -> Tensor:
        """Which points lie in the closed domain (boundary included, up to ``tol``).

        Args:
            points: ``[N, dim]`` tensor, on any device.
            tol: Absolute tolerance; points at most ``tol`` outside count as inside. The
                default suits float64; for float32 points use about ``1e-6`` times the size
                of the domain.

        Returns:
            Bool tensor ``[N]`` on the points' device.
        """

    @abc.abstractmethod
    def on_boundary(self, points: Tensor, tol: float = 1e-9) -> Tensor:
        """Which points lie on the boundary, within ``tol``.

        Args:
            points: ``[N, dim]`` tensor.
            tol: Absolute tolerance.

        Returns:
            Bool tensor ``[N]``.
        """

    @abc.abstractmethod
    def faces(self) -> list[str]:
        """Names of the boundary pieces, in the order :meth:`sample_boundary` uses."""

    @abc.abstractmethod
    def face_measure(self, name: str) -> float:
        """Measure (length, area, ...) of one face; 1 for the end points of an interval."""

    @abc.abstractmethod
    def volume(self) -> float:
        """Measure of the domain (length, area, volume, space-time volume)."""

    @abc.abstractmethod
    def _face_key(self, name: str) -> Any:
        """Resolve a face name (raising ``ValueError``) to an internal key."""

    @abc.abstractmethod
    def _face_map(self, key: Any, u: Tensor) -> tuple[Tensor, Tensor]:
        """Map float64 ``u`` ``[n, dim-1]`` in [0, 1) onto a face: ``(points, normals)``."""

    def _face_periodic(self, key: Any) -> tuple[bool, ...]:
        """Which unit coordinates of a face wrap around (closed curves)."""
        return (False,) * (self.dim - 1)

    @property
    def _is_box(self) -> bool:
        return False

    # ---- derived quantities -----------------------------------------------------------------

    def boundary_measure(self) -> float:
        """Total measure of the faces (for :class:`TimeProduct`: the lateral boundary only)."""
        return float(sum(self.face_measure(f) for f in self.faces()))

    def mean_std(
        self, dtype: torch.dtype = _F64, device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor]:
        """Input standardisation from the bounding box, for the MLP's input_shift/input_scale.

        Returns:
            ``(mean, std)`` of shape ``[dim]``: ``(lo + hi) / 2`` and ``(hi - lo) / sqrt(12)``,
            the mean and standard deviation of a uniform distribution on the bounding box.
        """
        _check_dtype(dtype)
        lo, hi = self.bounds()
        mean = (lo + hi) / 2.0
        std = (hi - lo) / math.sqrt(12.0)
        return _finish(mean, dtype, device), _finish(std, dtype, device)

    def _check_face(self, name: str) -> Any:
        return self._face_key(name)

    def _unknown_face(self, name: Any) -> ValueError:
        valid = ", ".join(repr(f) for f in self.faces())
        return ValueError(f"unknown face {name!r} for {self!r}; valid faces: {valid}")

    # ---- samplers ---------------------------------------------------------------------------

    def sample_interior(
        self,
        n: int,
        method: str = "sobol",
        seed: int = 0,
        dtype: torch.dtype = _F64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Points in the domain.

        Args:
            n: Number of points (>= 0).
            method: ``"sobol"`` (scrambled Sobol sequence, ``SobolEngine(dim, scramble=True,
                seed=seed)``) or ``"uniform"`` (i.i.d. uniform from a seeded generator).
            seed: Seed of the scrambling / generator.
            dtype: Floating dtype of the result.
            device: Device of the result (default CPU).

        Returns:
            ``[n, dim]`` tensor. For boxes the first ``n`` points of the sequence mapped onto the
            box; otherwise the first ``n`` points of the sequence (drawn over the bounding box)
            that fall inside the domain.
        """
        n = _check_n(n)
        _check_method(method, INTERIOR_METHODS)
        seed = _normalise_seed(seed)
        _check_dtype(dtype)
        lo, hi = self.bounds()
        if n == 0:
            x = torch.zeros(0, self.dim, dtype=_F64)
        elif self._is_box:
            x = _to_box(_unit(n, self.dim, method, seed), lo, hi)
        else:
            x = self._rejection(n, method, seed, lo, hi)
        return _finish(x, dtype, device)

    def _rejection(self, n: int, method: str, seed: int, lo: Tensor, hi: Tensor) -> Tensor:
        d = self.dim
        if method == "sobol":
            engine = torch.quasirandom.SobolEngine(d, scramble=True, seed=seed)

            def draw(m: int) -> Tensor:
                return engine.draw(m, dtype=_F64)

        else:
            gen = torch.Generator(device="cpu")
            gen.manual_seed(seed)

            def draw(m: int) -> Tensor:
                return torch.rand(m, d, generator=gen, dtype=_F64)

        box_volume = float(torch.prod(hi - lo))
        frac = min(1.0, max(1e-3, self.volume() / box_volume))
        parts: list[Tensor] = []
        got = drawn = 0
        while got < n:
            m = min(1 << 22, math.ceil(1.1 * (n - got) / frac) + 64)
            x = _to_box(draw(m), lo, hi)
            keep = x[self.contains(x, tol=0.0)]
            parts.append(keep)
            got += keep.shape[0]
            drawn += m
            if got == 0 and drawn >= 1 << 24:
                raise RuntimeError(f"rejection sampling found no point inside {self!r}")
            if got > 0:
                frac = min(1.0, max(1e-6, got / drawn))
        return torch.cat(parts)[:n]

    def sample_face(
        self,
        name: str,
        n: int | Sequence[int],
        method: str = "sobol",
        seed: int = 0,
        dtype: torch.dtype = _F64,
        device: torch.device | str | None = None,
        *,
        corners: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """Points on one face with the outward unit normals.

        Args:
            name: A name from :meth:`faces`.
            n: Number of points. With ``method="grid"`` on a face of dimension ``k >= 2`` it must
                be a perfect ``k``-th power or a tuple of ``k`` per-axis counts (in the order of
                the free coordinates, time last).
            method: ``"sobol"``, ``"uniform"`` or ``"grid"`` (evenly spaced).
            seed: Seed (ignored by ``"grid"``).
            dtype: Floating dtype of the result.
            device: Device of the result.
            corners: For ``"grid"``: include the face's end points (``linspace``) if True,
                else use the midpoints of equal cells. Periodic coordinates (around a disk or a
                star curve) always use ``k / n``.

        Returns:
            ``(points, normals)``, both ``[n, dim]``.
        """
        key = self._check_face(name)
        _check_method(method, BOUNDARY_METHODS)
        seed = _normalise_seed(seed)
        _check_dtype(dtype)
        k = self.dim - 1
        if method == "grid":
            counts = _grid_counts(n, k)
            total = _check_n(n) if k == 0 else math.prod(counts)
            u = _grid_unit(total, counts, corners, self._face_periodic(key))
        else:
            u = _unit(_check_n(n), k, method, seed)
        pts, nrm = self._face_map(key, u)
        return _finish(pts, dtype, device), _finish(nrm, dtype, device)

    def sample_boundary(
        self,
        n: int,
        method: str = "sobol",
        seed: int = 0,
        dtype: torch.dtype = _F64,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Points on the boundary with outward unit normals, spread over the faces.

        Face ``i`` of :meth:`faces` gets ``n_i`` points, ``n_i`` proportional to its measure
        (integers by the largest-remainder rule, ties to the earlier face), sampled like
        :meth:`sample_face` with a seed derived from ``(seed, i)``; faces are concatenated in
        order. ``method="grid"`` uses cell midpoints on each face (no duplicated corners) and
        needs faces of dimension <= 1.

        Args:
            n: Total number of points (>= 0).
            method: ``"sobol"``, ``"uniform"`` or ``"grid"``.
            seed: Seed.
            dtype: Floating dtype of the result.
            device: Device of the result.

        Returns:
            ``(points, normals)``, both ``[n, dim]``.
        """
        n = _check_n(n)
        _check_method(method, BOUNDARY_METHODS)
        seed = _normalise_seed(seed)
        _check_dtype(dtype)
        k = self.dim - 1
        if method == "grid" and k >= 2:
            raise ValueError(
                f"method 'grid' in sample_boundary needs faces of dimension <= 1, {self!r} has "
                f"{k}-dimensional faces; use sample_face(name, (n1, ..., n{k}), method='grid')"
            )
        names = self.faces()
        counts = _allocate(n, [self.face_measure(f) for f in names])
        pts_parts, nrm_parts = [], []
        for i, (name, c) in enumerate(zip(names, counts, strict=True)):
            if c == 0:
                continue
            key = self._face_key(name)
            if method == "grid":
                u = _grid_unit(c, (c,) * k, False, self._face_periodic(key))
            else:
                u = _unit(c, k, method, _derive_seed(seed, i))
            p, q = self._face_map(key, u)
            pts_parts.append(p)
            nrm_parts.append(q)
        if not pts_parts:
            empty = torch.zeros(0, self.dim, dtype=_F64)
            return _finish(empty, dtype, device), _finish(empty.clone(), dtype, device)
        pts = torch.cat(pts_parts)
        nrm = torch.cat(nrm_parts)
        return _finish(pts, dtype, device), _finish(nrm, dtype, device)
