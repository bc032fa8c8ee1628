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

Modules (one job each; import the public names from ``fluxkern.geometry``):
    * ``_checks``: argument checks, constants and the final dtype / device cast;
    * ``_sampling``: seeds and samplers of the unit cube (Sobol, uniform, grid), face counts;
    * ``base``: :class:`Domain`, the geometry interface and the samplers built on it;
    * ``boxes``: :class:`Box`, :class:`Interval`, :class:`Rectangle`;
    * ``spacetime``: :class:`TimeProduct`;
    * ``curved``: :class:`Disk`, :class:`StarDomain`;
    * ``polygon``: :class:`Polygon`;
    * ``grids``: :func:`grid`, :func:`grid_with_axes`;
    * ``pairs``: :func:`periodic_pairs`;
    * ``resample``: :class:`Resampler`.
"""

from __future__ import annotations

from fluxkern.geometry._checks import BOUNDARY_METHODS as BOUNDARY_METHODS
from fluxkern.geometry._checks import INTERIOR_METHODS as INTERIOR_METHODS
from fluxkern.geometry.base import Domain
from fluxkern.geometry.boxes import Box, Interval, Rectangle
from fluxkern.geometry.curved import Disk, StarDomain
from fluxkern.geometry.grids import grid, grid_with_axes
from fluxkern.geometry.pairs import periodic_pairs
from fluxkern.geometry.polygon import Polygon
from fluxkern.geometry.resample import Resampler
from fluxkern.geometry.spacetime import TimeProduct

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
