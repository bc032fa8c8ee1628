"""Simple polygons (:class:`Polygon`) and the blocked segment-distance helpers they use."""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import Tensor

from fluxkern.geometry._checks import _F64, _check_points
from fluxkern.geometry.base import Domain

__all__ = ["Polygon"]

_CHUNK = 1 << 20  # elements per block in pairwise [N, m] computations


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
