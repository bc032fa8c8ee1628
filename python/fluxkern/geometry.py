"""Geometry and sampling of collocation points.

Domains:
    :class:`Interval`, :class:`Rectangle` and :class:`Box` (axis-aligned boxes of any dimension),
    :class:`Disk`, :class:`Polygon` (simple, either orientation), :class:`StarDomain` (bounded by
    a closed curve ``r = radius_fn(theta)`` around a centre), and :class:`TimeProduct`
    (``space x [t0, t1]``, space coordinates first, time last).

Every domain offers:
    * ``dim``, ``bounds()`` (bounding box), ``volume()``, ``boundary_measure()``,
      ``mean_std()`` (the input standardisation of the MLP: mean ``(a+b)/2``, std
      ``(b-a)/sqrt(12)`` per coordinate of the bounding box);
    * ``contains(points)`` and ``on_boundary(points)`` masks;
    * ``sample_interior(n)``: scrambled Sobol points (``method="sobol"``, seeded) or uniform
      random points (``method="uniform"``, seeded ``torch.Generator``). Non-box domains use
      rejection from the bounding box; the accepted points are the first ``n`` points of the
      seeded sequence that fall inside, so the result is deterministic for a seed;
    * named boundary pieces ("faces"): ``faces()``, ``face_measure(name)`` and
      ``sample_face(name, n)`` returning ``(points, outward unit normals)``;
    * ``sample_boundary(n)``: ``n`` points spread over all faces in proportion to their measure
      (exact integer counts by the largest-remainder rule), with outward unit normals.

Free functions: :func:`grid` / :func:`grid_with_axes` (uniform tensor-product grids over a box),
:func:`periodic_pairs` (matched points on opposite faces) and :class:`Resampler` (points
re-drawn every ``every`` epochs).

Conventions:
    * All sampling is done in float64 on the CPU and then cast to ``dtype`` / moved to
      ``device``, so a seed gives the same points on every device (up to the final rounding).
    * Points are ``[n, dim]`` tensors; normals have the same shape; ``n = 0`` gives empty
      ``[0, dim]`` tensors.
    * ``method="grid"`` on a face places points evenly. With ``corners=True`` (the default of
      :meth:`Domain.sample_face`) the face's own end points are included (``linspace`` over the
      face; a single point sits in the middle); with ``corners=False`` the points are the
      midpoints of ``n`` equal cells. :meth:`Domain.sample_boundary` uses ``corners=False`` so
      that no point is duplicated at a corner. Closed curves (disk and star boundaries) are
      periodic: ``n`` grid points are ``k / n`` of the way around, ``k = 0..n-1``.
"""

from __future__ import annotations

import abc
import math
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "Box",
    "Disk",
    "Domain",
    "Interval",
    "Polygon",
    "Rectangle",
    "Resampler",
    "StarDomain",
    "TimeProduct",
    "grid",
    "grid_with_axes",
    "periodic_pairs",
]

_F64 = torch.float64
_TWO_PI = 2.0 * math.pi
_MASK64 = (1 << 64) - 1
INTERIOR_METHODS = ("sobol", "uniform")
BOUNDARY_METHODS = ("sobol", "uniform", "grid")
_CHUNK = 1 << 20  # elements per block in pairwise [N, m] computations


# --------------------------------------------------------------------------------------------
# argument checks and small helpers
# --------------------------------------------------------------------------------------------


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


def _derive_seed(seed: int, key: int) -> int:
    """A seed in [0, 2**63) mixed from (seed, key) with splitmix64."""
    z = (seed * 0x9E3779B97F4A7C15 + (key + 1) * 0xD1B54A32D192ED03) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1


def _normalise_seed(seed: Any) -> int:
    return _check_int(seed, "seed") % (1 << 63)


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


def _to_box(u: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    return torch.minimum(lo + u * (hi - lo), hi)


def _segment_dist2(p: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Squared distances ``[N, m]`` from points ``[N, 2]`` to segments ``a -> b`` ``[m, 2]``."""
    e = b - a  # [m, 2]
    ee = (e * e).sum(1)  # [m]
    d = p[:, None, :] - a[None, :, :]  # [N, m, 2]
    t = ((d * e[None]).sum(-1) / ee[None]).clamp(0.0, 1.0)  # [N, m]
    r = d - t[..., None] * e[None]
    return (r * r).sum(-1)


def _rows_per_block(m: int) -> int:
    return max(1, _CHUNK // max(m, 1))


# --------------------------------------------------------------------------------------------
# Domain
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# boxes
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# space-time
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# curved and polygonal 2-d domains
# --------------------------------------------------------------------------------------------


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


class Polygon(Domain):
    """Simple polygon (no self-intersections), vertices in either orientation.

    Faces are the edges ``"edge{i}"`` from ``vertices[i]`` to ``vertices[i + 1]`` (the last one
    closes the polygon); a unit coordinate ``u`` maps to ``v_i + u (v_{i+1} - v_i)``. Outward
    normals are constant per edge and account for the orientation. ``contains`` uses the
    even-odd crossing rule plus a distance test for points within ``tol`` of an edge.

    Args:
        vertices: ``[m, 2]`` sequence or tensor, ``m >= 3``; a repeated closing vertex
            (last == first) is dropped.

    Raises:
        ValueError: Fewer than 3 vertices, repeated consecutive vertices, zero area, or
            intersecting edges.

    Attributes:
        vertices: ``[m, 2]`` float64 as given.
        normals: ``[m, 2]`` outward unit normal of each edge.
        ccw: True if the vertices are counter-clockwise.
    """

    def __init__(self, vertices: Sequence[Sequence[float]] | Tensor) -> None:
        try:
            v = torch.as_tensor(vertices, dtype=_F64).detach().to("cpu").clone()
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"vertices must be an [m, 2] array of numbers, got {vertices!r}"
            ) from err
        if v.dim() != 2 or v.shape[1] != 2:
            raise ValueError(f"vertices must have shape [m, 2], got {list(v.shape)}")
        if v.shape[0] >= 2 and bool((v[0] == v[-1]).all()):
            v = v[:-1]
        if v.shape[0] < 3:
            raise ValueError(f"Polygon needs at least 3 vertices, got {v.shape[0]}")
        if not bool(torch.isfinite(v).all()):
            raise ValueError("vertices must be finite")
        self.vertices = v
        self.dim = 2
        a, b = v, torch.roll(v, -1, dims=0)
        e = b - a
        self._lengths = torch.linalg.vector_norm(e, dim=1)
        zero = (self._lengths == 0).nonzero().flatten()
        if zero.numel():
            i = int(zero[0])
            raise ValueError(
                f"Polygon has repeated consecutive vertices {i} and {(i + 1) % len(v)}"
            )
        scale = float((v.max(0).values - v.min(0).values).max())
        self._check_simple(a, b, scale)
        area2 = float((a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1]).sum())
        if abs(area2) <= 1e-14 * scale**2:
            raise ValueError("Polygon has zero area")
        self._area = abs(area2) / 2.0
        self.ccw = area2 > 0
        sign = 1.0 if self.ccw else -1.0
        self.normals = sign * torch.stack([e[:, 1], -e[:, 0]], dim=1) / self._lengths[:, None]

    def __repr__(self) -> str:
        return f"Polygon({self.vertices.tolist()})"

    @staticmethod
    def _check_simple(a: Tensor, b: Tensor, scale: float) -> None:
        m = a.shape[0]
        eps = 1e-12 * scale**2
        e = b - a

        def cross(u: Tensor, w: Tensor) -> Tensor:
            return u[..., 0] * w[..., 1] - u[..., 1] * w[..., 0]

        # consecutive edges folding back onto each other
        e_next = torch.roll(e, -1, dims=0)
        spike = (cross(e, e_next).abs() <= eps) & ((e * e_next).sum(1) < 0)
        if bool(spike.any()):
            i = int(spike.nonzero()[0])
            raise ValueError(f"Polygon is not simple: edges {i} and {(i + 1) % m} overlap")
        idx = torch.arange(m)
        block = _rows_per_block(m)
        for start in range(0, m, block):
            rows = idx[start : start + block]
            ai, bi = a[rows][:, None], b[rows][:, None]  # [B, 1, 2]
            aj, bj = a[None], b[None]  # [1, m, 2]
            o1 = cross(bi - ai, aj - ai)
            o2 = cross(bi - ai, bj - ai)
            o3 = cross(bj - aj, ai - aj)
            o4 = cross(bj - aj, bi - aj)
            s1, s2, s3, s4 = (
                torch.where(o.abs() <= eps, 0.0, torch.sign(o)) for o in (o1, o2, o3, o4)
            )
            proper = (s1 * s2 < 0) & (s3 * s4 < 0)

            def on_seg(p: Tensor, q0: Tensor, q1: Tensor) -> Tensor:
                lo = torch.minimum(q0, q1) - 1e-12 * scale
                hi = torch.maximum(q0, q1) + 1e-12 * scale
                return ((p >= lo) & (p <= hi)).all(-1)

            touch = (
                ((s1 == 0) & on_seg(aj, ai, bi))
                | ((s2 == 0) & on_seg(bj, ai, bi))
                | ((s3 == 0) & on_seg(ai, aj, bj))
                | ((s4 == 0) & on_seg(bi, aj, bj))
            )
            i_ = rows[:, None]
            j_ = idx[None]
            later = j_ > i_
            adjacent = (j_ == i_ + 1) | ((i_ == 0) & (j_ == m - 1))
            bad = (proper | touch) & later & ~adjacent
            if bool(bad.any()):
                r, c = bad.nonzero()[0].tolist()
                raise ValueError(f"Polygon is not simple: edges {int(rows[r])} and {c} intersect")

    def bounds(self) -> tuple[Tensor, Tensor]:
        """Min and max of the vertices."""
        return self.vertices.min(0).values.clone(), self.vertices.max(0).values.clone()

    def volume(self) -> float:
        """Area (shoelace formula)."""
        return self._area

    def _edges(self, like: Tensor) -> tuple[Tensor, Tensor]:
        a = self.vertices.to(like)
        return a, torch.roll(a, -1, dims=0)

    def _min_dist2(self, p: Tensor) -> Tensor:
        a, b = self._edges(p)
        out = []
        for blk in torch.split(p, _rows_per_block(a.shape[0])):
            out.append(_segment_dist2(blk, a, b).min(dim=1).values)
        return torch.cat(out) if out else p.new_zeros(0)

    def contains(self, points: Tensor, tol: float = 1e-12) -> Tensor:
        """Even-odd rule, or within ``tol`` of an edge."""
        p = _check_points(points, 2)
        a, b = self._edges(p)
        out = []
        for blk in torch.split(p, _rows_per_block(a.shape[0])):
            px, py = blk[:, :1], blk[:, 1:]
            ax, ay, bx, by = a[:, 0], a[:, 1], b[:, 0], b[:, 1]
            straddle = (ay > py) != (by > py)  # [B, m]
            dy = torch.where(by == ay, torch.ones_like(by), by - ay)
            x_cross = ax + (py - ay) * (bx - ax) / dy
            odd = (straddle & (px < x_cross)).sum(dim=1) % 2 == 1
            near = _segment_dist2(blk, a, b).min(dim=1).values <= tol * tol
            out.append(odd | near)
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=p.device)

    def on_boundary(self, points: Tensor, tol: float = 1e-9) -> Tensor:
        """Within ``tol`` of an edge."""
        p = _check_points(points, 2)
        return self._min_dist2(p) <= tol * tol

    def faces(self) -> list[str]:
        """``["edge0", ..., "edge{m-1}"]``."""
        return [f"edge{i}" for i in range(self.vertices.shape[0])]

    def _face_key(self, name: str) -> int:
        if isinstance(name, str) and re.fullmatch(r"edge\d+", name):
            i = int(name[4:])
            if i < self.vertices.shape[0] and name == f"edge{i}":
                return i
        raise self._unknown_face(name)

    def face_measure(self, name: str) -> float:
        """Edge length."""
        return float(self._lengths[self._face_key(name)])

    def _face_map(self, key: int, u: Tensor) -> tuple[Tensor, Tensor]:
        a = self.vertices[key]
        b = self.vertices[(key + 1) % self.vertices.shape[0]]
        pts = a + u[:, :1] * (b - a)
        return pts, self.normals[key].expand(u.shape[0], 2).clone()


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


# --------------------------------------------------------------------------------------------
# grids, periodic pairs, resampling
# --------------------------------------------------------------------------------------------


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


class Resampler:
    """Point sets re-drawn every ``every`` epochs.

    ``points(epoch)`` returns ``sampler_fn(seed=seed + epoch // every)``, cached while the seed
    does not change, so the schedule is deterministic and independent of the call pattern
    (epochs may be queried in any order).

    Example:
        >>> dom = Rectangle([0, 0], [1, 1])
        >>> res = Resampler(lambda seed: dom.sample_interior(256, "uniform", seed=seed), 100)
        >>> x = res.points(0)  # the same tensor for epochs 0..99, a new draw at 100

    Args:
        sampler_fn: Callable taking a keyword ``seed`` and returning anything (a tensor, or a
            tuple such as ``(points, normals)``).
        every: Epochs per draw, >= 1.
        seed: Offset added to ``epoch // every``.

    Attributes:
        num_draws: How many times ``sampler_fn`` has been called.
    """

    def __init__(self, sampler_fn: Callable[..., Any], every: int, *, seed: int = 0) -> None:
        if not callable(sampler_fn):
            raise ValueError(f"sampler_fn must be callable, got {sampler_fn!r}")
        self.sampler_fn = sampler_fn
        self.every = _check_int(every, "every", 1)
        self.seed = _check_int(seed, "seed")
        self.num_draws = 0
        self._seed: int | None = None
        self._value: Any = None

    def __repr__(self) -> str:
        return f"Resampler(every={self.every}, seed={self.seed})"

    def seed_for(self, epoch: int) -> int:
        """Seed used for ``epoch``: ``seed + epoch // every``."""
        return self.seed + _check_int(epoch, "epoch", 0) // self.every

    def redraws_at(self, epoch: int) -> bool:
        """True if ``epoch`` starts a new draw (``epoch % every == 0``, epoch 0 included)."""
        return _check_int(epoch, "epoch", 0) % self.every == 0

    def points(self, epoch: int) -> Any:
        """The point set of ``epoch`` (drawn on first use of its seed)."""
        s = self.seed_for(epoch)
        if s != self._seed:
            self._value = self.sampler_fn(seed=s)
            self._seed = s
            self.num_draws += 1
        return self._value
