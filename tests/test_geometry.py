"""Tests of fluxkern.geometry: domains, samplers, grids, periodic pairs and resampling."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch

geo = importlib.import_module("fluxkern.geometry")

F64 = torch.float64
EPS = 1e-7  # step along the normal for the inside / outside checks


def star_radius(theta: torch.Tensor) -> torch.Tensor:
    return 1.0 + 0.3 * torch.cos(5.0 * theta)


# L-shape [0,2]x[0,1] U [0,1]x[0,2]: non-convex, one reflex vertex at (1, 1)
L_VERTICES = [[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [1.0, 1.0], [1.0, 2.0], [0.0, 2.0]]


def l_shape_contains(p: torch.Tensor) -> torch.Tensor:
    x, y = p[:, 0], p[:, 1]
    in_a = (x >= 0) & (x <= 2) & (y >= 0) & (y <= 1)
    in_b = (x >= 0) & (x <= 1) & (y >= 0) & (y <= 2)
    return in_a | in_b


def make_domains() -> dict[str, object]:
    return {
        "interval": geo.Interval(-1.0, 1.0),
        "rectangle": geo.Rectangle([0.0, -1.0], [2.0, 1.0]),
        "box3": geo.Box([0.0, 0.0, 0.0], [1.0, 2.0, 0.5]),
        "disk": geo.Disk([0.5, -0.25], 1.5),
        "polygon_l": geo.Polygon(L_VERTICES),
        "polygon_l_cw": geo.Polygon(L_VERTICES[::-1]),
        "star": geo.StarDomain(star_radius, center=(1.0, 2.0), n_quad=2048),
        "time_interval": geo.TimeProduct(geo.Interval(0.0, 2 * math.pi), 0.0, 1.0),
        "time_rectangle": geo.TimeProduct(geo.Rectangle([0, 0], [1, 1]), 0.0, 2.0),
        "time_disk": geo.TimeProduct(geo.Disk([0.0, 0.0], 1.0), -1.0, 1.0),
        "time_polygon": geo.TimeProduct(geo.Polygon(L_VERTICES), 0.0, 1.0),
    }


DOMAINS = make_domains()
NAMES = sorted(DOMAINS)


def _space_part(dom):
    return dom.space if isinstance(dom, geo.TimeProduct) else dom


def _away_from_vertices(dom, pts: torch.Tensor, dist: float = 1e-5) -> torch.Tensor:
    """Mask of points farther than ``dist`` from every polygon vertex (normals jump there)."""
    space = _space_part(dom)
    if not isinstance(space, geo.Polygon):
        return torch.ones(pts.shape[0], dtype=torch.bool)
    d = torch.cdist(pts[:, :2], space.vertices)
    return d.min(dim=1).values > dist


# ------------------------------------------------------------------------------------------
# interior sampling
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sobol", "uniform"])
@pytest.mark.parametrize("name", NAMES)
def test_interior_points_inside(name, method):
    dom = DOMAINS[name]
    x = dom.sample_interior(513, method=method, seed=3)
    assert x.shape == (513, dom.dim) and x.dtype == F64
    assert bool(dom.contains(x).all())
    lo, hi = dom.bounds()
    assert bool(((x >= lo) & (x <= hi)).all())
    assert x.unique(dim=0).shape[0] == 513  # no repeated points


def test_contains_matches_analytic_descriptions():
    p = geo.Rectangle([-1, -1], [3, 4]).sample_interior(4000, method="uniform", seed=1)
    disk = DOMAINS["disk"]
    expect = (p - torch.tensor([0.5, -0.25], dtype=F64)).norm(dim=1) <= 1.5
    assert torch.equal(disk.contains(p), expect)
    for name in ("polygon_l", "polygon_l_cw"):
        assert torch.equal(DOMAINS[name].contains(p), l_shape_contains(p))
    star = DOMAINS["star"]
    d = p - torch.tensor([1.0, 2.0], dtype=F64)
    expect = d.norm(dim=1) <= star_radius(torch.atan2(d[:, 1], d[:, 0]))
    assert torch.equal(star.contains(p), expect)
    rect = DOMAINS["rectangle"]
    expect = (p[:, 0] >= 0) & (p[:, 0] <= 2) & (p[:, 1] >= -1) & (p[:, 1] <= 1)
    assert torch.equal(rect.contains(p), expect)
    # both outcomes occur, so the comparisons above are not vacuous
    for dom in (disk, star, rect, DOMAINS["polygon_l"]):
        m = dom.contains(p)
        assert 0 < int(m.sum()) < p.shape[0]


def test_contains_tolerance_and_shape_checks():
    rect = geo.Rectangle([0, 0], [1, 1])
    p = torch.tensor([[1.0 + 1e-13, 0.5], [1.0 + 1e-9, 0.5]], dtype=F64)
    assert rect.contains(p).tolist() == [True, False]
    assert rect.contains(p, tol=1e-8).tolist() == [True, True]
    assert rect.contains(torch.zeros(0, 2)).shape == (0,)
    with pytest.raises(ValueError, match=r"shape \[N, 2\].*\[5, 3\]"):
        rect.contains(torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
        rect.contains(torch.zeros(2))


def test_sobol_is_a_net_and_uniform_is_not():
    # 1024 scrambled Sobol points in 2-d: exactly 64 in each cell of a 4 x 4 partition.
    sq = geo.Rectangle([0, 0], [1, 1])
    x = sq.sample_interior(1024, "sobol", seed=7)
    cells = (x[:, 0] * 4).floor() * 4 + (x[:, 1] * 4).floor()
    assert torch.bincount(cells.long(), minlength=16).tolist() == [64] * 16
    y = sq.sample_interior(1024, "uniform", seed=7)
    cells = (y[:, 0] * 4).floor() * 4 + (y[:, 1] * 4).floor()
    assert torch.bincount(cells.long(), minlength=16).tolist() != [64] * 16


@pytest.mark.parametrize("method", ["sobol", "uniform"])
@pytest.mark.parametrize("name", ["rectangle", "disk", "star", "time_disk"])
def test_interior_reproducible_and_seed_dependent(name, method):
    dom = DOMAINS[name]
    a = dom.sample_interior(300, method, seed=11)
    b = dom.sample_interior(300, method, seed=11)
    c = dom.sample_interior(300, method, seed=12)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    other = "uniform" if method == "sobol" else "sobol"
    assert not torch.allclose(a, dom.sample_interior(300, other, seed=11))


@pytest.mark.parametrize("name", ["rectangle", "disk", "polygon_l", "star", "time_disk"])
def test_sobol_rejection_is_prefix_consistent(name):
    dom = DOMAINS[name]
    small = dom.sample_interior(100, seed=5)
    big = dom.sample_interior(1000, seed=5)
    assert torch.equal(small, big[:100])


def test_box_interior_is_mapped_sobol_sequence():
    box = DOMAINS["box3"]
    x = box.sample_interior(64, seed=9)
    u = torch.quasirandom.SobolEngine(3, scramble=True, seed=9).draw(64, dtype=F64)
    assert torch.allclose(x, u * torch.tensor([1.0, 2.0, 0.5], dtype=F64), rtol=0, atol=1e-15)


def test_rejection_fraction_matches_volume():
    # Fraction of bounding-box Sobol points accepted ~ volume / box volume.
    for name in ("disk", "polygon_l", "star"):
        dom = DOMAINS[name]
        lo, hi = dom.bounds()
        u = torch.quasirandom.SobolEngine(2, scramble=True, seed=0).draw(1 << 14, dtype=F64)
        frac = dom.contains(lo + u * (hi - lo)).double().mean().item()
        assert frac == pytest.approx(dom.volume() / float(torch.prod(hi - lo)), abs=5e-3)
    assert DOMAINS["disk"].volume() == pytest.approx(math.pi * 1.5**2)
    assert DOMAINS["polygon_l"].volume() == pytest.approx(3.0)
    assert DOMAINS["star"].volume() == pytest.approx(math.pi * (1 + 0.3**2 / 2), rel=1e-12)
    assert DOMAINS["time_disk"].volume() == pytest.approx(2 * math.pi)


# ------------------------------------------------------------------------------------------
# boundary sampling and normals
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sobol", "uniform"])
@pytest.mark.parametrize("name", NAMES)
def test_boundary_points_and_outward_normals(name, method):
    dom = DOMAINS[name]
    p, n = dom.sample_boundary(401, method=method, seed=2)
    assert p.shape == n.shape == (401, dom.dim)
    assert bool(dom.on_boundary(p, tol=1e-12).all())
    assert bool(dom.contains(p).all())
    assert torch.allclose(n.norm(dim=1), torch.ones(401, dtype=F64), rtol=0, atol=1e-14)
    keep = _away_from_vertices(dom, p)
    assert int(keep.sum()) > 390
    p, n = p[keep], n[keep]
    assert not bool(dom.contains(p + EPS * n).any()), "p + eps n must be outside"
    assert bool(dom.contains(p - EPS * n).all()), "p - eps n must be inside"
    assert not bool(dom.on_boundary(p - EPS * n, tol=1e-9).any())
    if isinstance(dom, geo.TimeProduct):
        assert bool((n[:, -1] == 0).all())
        assert bool(((p[:, -1] >= dom.t0) & (p[:, -1] <= dom.t1)).all())


def test_disk_normals_are_radial_and_angles_uniform():
    disk = DOMAINS["disk"]
    c = torch.tensor([0.5, -0.25], dtype=F64)
    p, n = disk.sample_boundary(256, seed=4)
    assert torch.allclose(n, (p - c) / 1.5, atol=1e-15)
    p, n = disk.sample_boundary(8, method="grid")
    angles = torch.remainder(torch.atan2(n[:, 1], n[:, 0]), 2 * math.pi)
    assert torch.allclose(angles, torch.arange(8, dtype=F64) * (math.pi / 4), atol=1e-12)
    # Sobol over the angle: 256 points, one per arc of 2 pi / 256
    p, n = disk.sample_boundary(256, seed=4)
    k = (torch.remainder(torch.atan2(n[:, 1], n[:, 0]), 2 * math.pi) / (2 * math.pi) * 256).long()
    assert torch.bincount(k, minlength=256).tolist() == [1] * 256


def test_polygon_normals_outward_for_both_orientations():
    expected = torch.tensor(
        [[0, -1], [1, 0], [0, 1], [1, 0], [0, 1], [-1, 0]], dtype=F64
    )  # edges of L_VERTICES in order
    ccw = geo.Polygon(L_VERTICES)
    assert ccw.ccw
    assert torch.equal(ccw.normals, expected)
    cw = geo.Polygon(L_VERTICES[::-1])
    assert not cw.ccw
    # reversed order: edge i joins reversed vertices i -> i+1, i.e. original edge 4 - i (mod 6)
    idx = [(4 - i) % 6 for i in range(6)]
    assert torch.equal(cw.normals, expected[idx])
    closed = geo.Polygon(L_VERTICES + [L_VERTICES[0]])
    assert closed.vertices.shape == (6, 2)


def test_polygon_edge_sampling_and_proportions():
    poly = DOMAINS["polygon_l"]
    assert poly.faces() == [f"edge{i}" for i in range(6)]
    assert poly.boundary_measure() == pytest.approx(8.0)
    p, n = poly.sample_face("edge3", 50, seed=1)  # (1, 1) -> (1, 2), normal +x
    assert bool((p[:, 0] == 1.0).all()) and bool(((p[:, 1] >= 1) & (p[:, 1] <= 2)).all())
    assert torch.equal(n, torch.tensor([[1.0, 0.0]], dtype=F64).expand(50, 2))
    p, n = poly.sample_boundary(800, seed=0)  # edge lengths 2, 1, 1, 1, 1, 2
    counts = [int((n == poly.normals[i]).all(1).sum()) for i in (0, 5)]
    assert counts == [200, 200]
    assert int((p[:, 1] == 0).sum()) == 200  # edge0 lies on y = 0


def test_star_boundary_by_arc_length_with_exact_normals():
    star = DOMAINS["star"]
    p, n = star.sample_boundary(2000, method="grid")
    # evenly spaced in arc length: chords all close to perimeter / n
    chord = (p - p.roll(-1, 0)).norm(dim=1)
    h = star.perimeter() / 2000
    assert float((chord / h - 1).abs().max()) < 2e-3
    # on the curve exactly
    d = p - torch.tensor([1.0, 2.0], dtype=F64)
    theta = torch.atan2(d[:, 1], d[:, 0])
    r = star_radius(theta)
    assert torch.allclose(d.norm(dim=1), r, rtol=0, atol=1e-14)
    # exact normal: n = (r e_r - r' e_theta) / sqrt(r^2 + r'^2), r' = -1.5 sin(5 theta)
    dr = -1.5 * torch.sin(5.0 * theta)
    e_r = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    e_t = torch.stack([-torch.sin(theta), torch.cos(theta)], dim=1)
    exact = (r[:, None] * e_r - dr[:, None] * e_t) / torch.sqrt(r * r + dr * dr)[:, None]
    assert torch.allclose(n, exact, rtol=0, atol=1e-13)
    # and roughly orthogonal to the chord between its neighbours
    tangent = p.roll(-1, 0) - p.roll(1, 0)
    assert float(((n * tangent).sum(1) / tangent.norm(dim=1)).abs().max()) < 2e-3


def test_star_circle_perimeter_area_and_bounds():
    circle = geo.StarDomain(lambda t: torch.full_like(t, 2.0), center=(1.0, -1.0))
    assert circle.perimeter() == pytest.approx(4 * math.pi, rel=1e-12)
    assert circle.volume() == pytest.approx(4 * math.pi, rel=1e-12)
    lo, hi = circle.bounds()
    assert torch.allclose(lo, torch.tensor([-1.0, -3.0], dtype=F64), atol=1e-12)
    assert torch.allclose(hi, torch.tensor([3.0, 1.0], dtype=F64), atol=1e-12)
    p, n = circle.sample_boundary(64, seed=0)
    assert torch.allclose(n, (p - torch.tensor([1.0, -1.0], dtype=F64)) / 2, atol=1e-12)
    star = DOMAINS["star"]
    lo, hi = star.bounds()
    dense = star.sample_boundary(20000, method="grid")[0]
    assert bool((dense >= lo - 1e-12).all() and (dense <= hi + 1e-12).all())
    assert torch.allclose(dense.min(0).values, lo, atol=1e-6)
    assert torch.allclose(dense.max(0).values, hi, atol=1e-6)


def test_star_finite_difference_fallback_matches_autograd():
    def numpy_radius(theta):  # not differentiable by autograd
        return torch.from_numpy(1.0 + 0.3 * np.cos(5.0 * theta.detach().numpy()))

    fd = geo.StarDomain(numpy_radius, center=(1.0, 2.0), n_quad=2048)
    p_fd, n_fd = fd.sample_boundary(300, seed=1)
    p_ad, n_ad = DOMAINS["star"].sample_boundary(300, seed=1)
    assert torch.allclose(p_fd, p_ad, atol=1e-9)
    assert torch.allclose(n_fd, n_ad, atol=1e-8)


def test_star_works_under_inference_mode():
    with torch.inference_mode():
        star = geo.StarDomain(star_radius)
        p, n = star.sample_boundary(10, seed=0)
    assert p.shape == (10, 2) and bool(star.on_boundary(p).all())


# ------------------------------------------------------------------------------------------
# boxes: faces and proportions
# ------------------------------------------------------------------------------------------


def test_face_names():
    assert geo.Interval(0, 1).faces() == ["left", "right"]
    assert geo.Rectangle([0, 0], [1, 1]).faces() == ["left", "right", "bottom", "top"]
    assert geo.Box([0] * 3, [1] * 3).faces() == ["x0-", "x0+", "x1-", "x1+", "x2-", "x2+"]
    tp = geo.TimeProduct(geo.Rectangle([0, 0], [1, 1]), 0, 1)
    assert tp.faces() == ["left", "right", "bottom", "top"]


@pytest.mark.parametrize(
    "face, axis, value, sign",
    [("left", 0, 0.0, -1), ("right", 0, 2.0, 1), ("bottom", 1, -1.0, -1), ("top", 1, 1.0, 1)],
)
def test_rectangle_faces(face, axis, value, sign):
    rect = DOMAINS["rectangle"]
    p, n = rect.sample_face(face, 37, seed=3)
    assert bool((p[:, axis] == value).all())
    other = 1 - axis
    lo, hi = rect.bounds()
    assert bool(((p[:, other] >= lo[other]) & (p[:, other] <= hi[other])).all())
    assert float(p[:, other].std()) > 0.3  # spread over the face
    expect = torch.zeros(37, 2, dtype=F64)
    expect[:, axis] = sign
    assert torch.equal(n, expect)
    generic = f"x{axis}{'+' if sign > 0 else '-'}"
    assert torch.equal(rect.sample_face(generic, 37, seed=3)[0], p)


def test_box3_face_and_proportions():
    box = DOMAINS["box3"]  # extents 1, 2, 0.5: face areas x0: 1, x1: 0.5, x2: 2
    p, n = box.sample_face("x1+", 20, seed=0)
    assert bool((p[:, 1] == 2.0).all()) and torch.equal(
        n[0], torch.tensor([0.0, 1.0, 0.0], dtype=F64)
    )
    p, n = box.sample_boundary(700, seed=0)
    counts = {}
    for i in range(3):
        for s, name in ((-1.0, f"x{i}-"), (1.0, f"x{i}+")):
            counts[name] = int((n[:, i] == s).sum())
    assert counts == {"x0-": 100, "x0+": 100, "x1-": 50, "x1+": 50, "x2-": 200, "x2+": 200}
    assert box.face_measure("x2-") == pytest.approx(2.0)
    assert box.boundary_measure() == pytest.approx(7.0)


def test_boundary_allocation_with_remainder():
    rect = geo.Rectangle([0, 0], [3, 1])  # measures 1, 1, 3, 3 -> quotas n/8, n/8, 3n/8, 3n/8
    for total in (0, 1, 5, 13, 101):
        p, n = rect.sample_boundary(total, seed=0)
        assert p.shape == (total, 2)
        counts = [
            int((n[:, 0] == -1).sum()),
            int((n[:, 0] == 1).sum()),
            int((n[:, 1] == -1).sum()),
            int((n[:, 1] == 1).sum()),
        ]
        assert sum(counts) == total
        for c, w in zip(counts, (1, 1, 3, 3), strict=True):
            assert abs(c - total * w / 8) < 1
        if total == 13:  # quotas 1.625, 1.625, 4.875, 4.875: largest remainders first
            assert counts == [2, 1, 5, 5]
    # composite_heat / stokes style counts
    square = geo.Rectangle([0, 0], [1, 1])
    _, n = square.sample_boundary(2048)
    assert int((n[:, 1] == 1).sum()) == 512


def test_boundary_faces_use_different_seeds():
    square = geo.Rectangle([0, 0], [1, 1])
    p, _ = square.sample_boundary(200, seed=0)
    left, right = p[:50], p[50:100]
    assert not torch.allclose(left[:, 1], right[:, 1])


def test_interval_boundary():
    iv = geo.Interval(0.0, 1.0)
    p, n = iv.sample_boundary(2)
    assert p.flatten().tolist() == [0.0, 1.0] and n.flatten().tolist() == [-1.0, 1.0]
    p, n = iv.sample_face("right", 3, method="grid")
    assert p.flatten().tolist() == [1.0] * 3 and n.flatten().tolist() == [1.0] * 3


def test_face_grid_corners():
    rect = DOMAINS["rectangle"]
    p, _ = rect.sample_face("bottom", 5, method="grid")
    assert p[:, 0].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    p, _ = rect.sample_face("bottom", 4, method="grid", corners=False)
    assert p[:, 0].tolist() == [0.25, 0.75, 1.25, 1.75]
    p, _ = rect.sample_face("left", 1, method="grid")
    assert p.tolist() == [[0.0, 0.0]]
    # boundary grid: cell midpoints, no corner duplicated
    p, _ = geo.Rectangle([0, 0], [1, 1]).sample_boundary(8, method="grid")
    assert p.unique(dim=0).shape[0] == 8
    assert sorted(p[:2, 1].tolist()) == [0.25, 0.75]


def test_face_grid_on_two_dimensional_faces():
    box = DOMAINS["box3"]
    p, _ = box.sample_face("x0+", (2, 3), method="grid")
    assert p.shape == (6, 3)
    assert p[:, 1].tolist() == [0.0, 0.0, 0.0, 2.0, 2.0, 2.0]
    assert p[:, 2].tolist() == [0.0, 0.25, 0.5] * 2
    p, _ = box.sample_face("x0+", 9, method="grid")
    assert p.shape == (9, 3)
    with pytest.raises(ValueError, match="perfect 2-th power or a tuple"):
        box.sample_face("x0+", 10, method="grid")
    with pytest.raises(ValueError, match="needs faces of dimension <= 1"):
        box.sample_boundary(10, method="grid")


# ------------------------------------------------------------------------------------------
# space-time
# ------------------------------------------------------------------------------------------


def test_time_product_faces_and_initial():
    tp = geo.TimeProduct(geo.Interval(-1.0, 1.0), 0.0, 2.0)
    assert tp.dim == 2
    lo, hi = tp.bounds()
    assert lo.tolist() == [-1.0, 0.0] and hi.tolist() == [1.0, 2.0]
    p, n = tp.sample_face("left", 512, seed=1)
    assert bool((p[:, 0] == -1).all()) and bool((n == torch.tensor([-1.0, 0.0], dtype=F64)).all())
    assert float(p[:, 1].min()) < 0.01 and float(p[:, 1].max()) > 1.99
    p, n = tp.sample_boundary(1024, seed=1)
    assert int((p[:, 0] == 1).sum()) == 512 and int((p[:, 0] == -1).sum()) == 512
    x0 = tp.sample_initial(512, seed=2)
    assert x0.shape == (512, 2) and bool((x0[:, 1] == 0).all())
    assert torch.equal(x0[:, :1], tp.space.sample_interior(512, seed=2))
    p, _ = tp.sample_face("left", 3, method="grid")
    assert p.tolist() == [[-1.0, 0.0], [-1.0, 1.0], [-1.0, 2.0]]
    assert tp.face_measure("left") == 2.0 and tp.volume() == 4.0


def test_time_product_interior_is_space_time_sobol():
    tp = geo.TimeProduct(geo.Interval(0.0, 1.0), 0.0, 1.0)
    x = tp.sample_interior(1024, seed=0)
    cells = (x[:, 0] * 4).floor() * 4 + (x[:, 1] * 4).floor()
    assert torch.bincount(cells.long(), minlength=16).tolist() == [64] * 16


def test_time_product_disk_boundary_grid_and_errors():
    tp = DOMAINS["time_disk"]
    p, n = tp.sample_face("boundary", (4, 3), method="grid")
    assert p.shape == (12, 3)
    assert p[:3, 2].tolist() == [-1.0, 0.0, 1.0]
    assert torch.allclose(
        p[::3, :2], torch.tensor([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=F64), atol=1e-15
    )
    assert bool((n[:, 2] == 0).all())
    with pytest.raises(ValueError, match="t0 < t1"):
        geo.TimeProduct(geo.Interval(0, 1), 1.0, 1.0)
    with pytest.raises(ValueError, match="spatial Domain"):
        geo.TimeProduct(tp, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"unknown face 'left'.*valid faces: 'boundary'"):
        tp.sample_face("left", 3)


# ------------------------------------------------------------------------------------------
# grids and periodic pairs
# ------------------------------------------------------------------------------------------


def test_grid_shape_endpoints_and_order():
    pts, axes = geo.grid_with_axes(([0.0, -1.0], [1.0, 1.0]), (3, 5))
    assert pts.shape == (15, 2)
    assert axes[0].tolist() == [0.0, 0.5, 1.0] and axes[1].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert pts[0].tolist() == [0.0, -1.0] and pts[-1].tolist() == [1.0, 1.0]
    assert pts[1].tolist() == [0.0, -0.5]  # last axis fastest ("ij")
    f = pts[:, 0] * 10 + pts[:, 1]
    assert torch.equal(f.reshape(3, 5), axes[0][:, None] * 10 + axes[1][None, :])
    g = geo.grid(geo.Rectangle([0, 0], [1, 1]), 100)
    assert g.shape == (10000, 2)
    assert g.min(0).values.tolist() == [0.0, 0.0] and g.max(0).values.tolist() == [1.0, 1.0]
    # convection's evaluation grid: x = arange(0, 2 pi, 2 pi / 256), t = linspace(0, 1, 256)
    tp = geo.TimeProduct(geo.Interval(0.0, 2 * math.pi), 0.0, 1.0)
    pts, (xs, ts) = geo.grid_with_axes(tp, 256, endpoint=(False, True))
    assert torch.allclose(xs, torch.arange(256, dtype=F64) * (2 * math.pi / 256), atol=1e-15)
    assert ts[0] == 0 and ts[-1] == 1 and pts.shape == (256 * 256, 2)
    g32 = geo.grid(geo.Interval(0, 1), 4, dtype=torch.float32)
    assert g32.dtype == torch.float32 and g32.shape == (4, 1)


def test_grid_errors():
    with pytest.raises(ValueError, match="shape must have 2 entries"):
        geo.grid(([0, 0], [1, 1]), (3, 4, 5))
    with pytest.raises(ValueError, match="lo < hi"):
        geo.grid(([0, 1], [1, 1]), 3)
    with pytest.raises(ValueError, match="Domain or a"):
        geo.grid(5, 3)


@pytest.mark.parametrize("method", ["sobol", "uniform", "grid"])
def test_periodic_pairs(method):
    rect = geo.Rectangle([0.0, -1.0], [2 * math.pi, 1.0])
    a, b = geo.periodic_pairs(rect, 0, 64, method=method, seed=3)
    assert a.shape == b.shape == (64, 2)
    assert bool((a[:, 0] == 0).all()) and bool((b[:, 0] == 2 * math.pi).all())
    assert torch.equal(a[:, 1], b[:, 1]) and float(a[:, 1].std()) > 0.3
    a, b = geo.periodic_pairs(rect, -1, 16, method=method, seed=3)  # axis 1
    assert bool((a[:, 1] == -1).all()) and bool((b[:, 1] == 1).all())
    assert torch.equal(a[:, 0], b[:, 0])
    tp = geo.TimeProduct(geo.Interval(0.0, 2 * math.pi), 0.0, 1.0)
    a, b = geo.periodic_pairs(tp, 0, 512, method=method, seed=0)
    assert torch.equal(a[:, 1], b[:, 1])
    assert bool((b[:, 0] == 2 * math.pi).all()) and bool(tp.contains(a).all())
    assert float(a[:, 1].min()) < 0.01 and float(a[:, 1].max()) > 0.99


def test_periodic_pairs_errors():
    with pytest.raises(ValueError, match="periodic_pairs needs a Box"):
        geo.periodic_pairs(geo.Disk([0, 0], 1), 0, 4)
    with pytest.raises(ValueError, match=r"axis must be in \[-2, 1\], got 2"):
        geo.periodic_pairs(geo.Rectangle([0, 0], [1, 1]), 2, 4)


# ------------------------------------------------------------------------------------------
# resampling
# ------------------------------------------------------------------------------------------


def test_resampler_schedule():
    calls = []
    dom = geo.Rectangle([0, 0], [1, 1])

    def sampler(seed):
        calls.append(seed)
        return dom.sample_interior(32, "uniform", seed=seed)

    res = geo.Resampler(sampler, every=3)
    seen = [res.points(e) for e in range(10)]
    assert calls == [0, 1, 2, 3]
    assert res.num_draws == 4
    assert [res.seed_for(e) for e in range(7)] == [0, 0, 0, 1, 1, 1, 2]
    assert [res.redraws_at(e) for e in range(7)] == [True, False, False, True, False, False, True]
    assert seen[0] is seen[2] and seen[3] is not seen[2]
    assert not torch.equal(seen[2], seen[3])
    assert torch.equal(seen[4], dom.sample_interior(32, "uniform", seed=1))
    # deterministic regardless of call order
    other = geo.Resampler(sampler, every=3)
    assert torch.equal(other.points(7), seen[7]) and torch.equal(other.points(1), seen[1])
    offset = geo.Resampler(sampler, every=2, seed=100)
    assert offset.seed_for(5) == 102
    with pytest.raises(ValueError, match="every must be >= 1"):
        geo.Resampler(sampler, every=0)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        res.points(-1)


# ------------------------------------------------------------------------------------------
# empty sizes, dtypes, standardisation, errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_zero_points(name):
    dom = DOMAINS[name]
    assert dom.sample_interior(0).shape == (0, dom.dim)
    p, n = dom.sample_boundary(0)
    assert p.shape == n.shape == (0, dom.dim)
    p, n = dom.sample_face(dom.faces()[0], 0)
    assert p.shape == n.shape == (0, dom.dim)
    assert dom.contains(torch.zeros(0, dom.dim)).shape == (0,)


def test_dtype_and_device_arguments():
    disk = DOMAINS["disk"]
    x64 = disk.sample_interior(100, seed=1)
    x32 = disk.sample_interior(100, seed=1, dtype=torch.float32, device="cpu")
    assert x32.dtype == torch.float32 and torch.equal(x32, x64.float())
    p, n = disk.sample_boundary(10, dtype=torch.float32)
    assert p.dtype == n.dtype == torch.float32
    assert bool(disk.contains(p, tol=1e-5).all())
    with pytest.raises(ValueError, match="floating-point torch.dtype"):
        disk.sample_interior(3, dtype=torch.int64)


def test_mean_std():
    tp = geo.TimeProduct(geo.Interval(-1.0, 1.0), 0.0, 2.0)
    mean, std = tp.mean_std()
    assert mean.tolist() == [0.0, 1.0]
    assert torch.allclose(std, torch.full((2,), 2 / math.sqrt(12), dtype=F64))
    # std of the uniform distribution on the box
    x = tp.sample_interior(1 << 14)
    assert torch.allclose(x.std(0), std, rtol=1e-3)
    mean, std = DOMAINS["disk"].mean_std(dtype=torch.float32)
    assert mean.dtype == torch.float32 and mean.tolist() == [0.5, -0.25]


def test_error_messages():
    with pytest.raises(ValueError, match=r"axis 1 has lo=1.0 >= hi=0.5"):
        geo.Box([0, 1], [1, 0.5])
    with pytest.raises(ValueError, match="Interval needs a < b"):
        geo.Interval(1.0, 1.0)
    with pytest.raises(ValueError, match="same length"):
        geo.Box([0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="hi must have 2 entries"):
        geo.Rectangle([0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="finite"):
        geo.Box([0, 0], [1, float("inf")])
    with pytest.raises(ValueError, match="radius must be > 0, got 0.0"):
        geo.Disk([0, 0], 0.0)
    with pytest.raises(ValueError, match="radius must be > 0"):
        geo.Disk([0, 0], -1.0)
    with pytest.raises(ValueError, match="at least 3 vertices, got 2"):
        geo.Polygon([[0, 0], [1, 0]])
    with pytest.raises(ValueError, match=r"shape \[m, 2\]"):
        geo.Polygon([[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="not simple: edges 0 and 2 intersect"):
        geo.Polygon([[0, 0], [1, 1], [1, 0], [0, 1]])  # bow tie
    with pytest.raises(ValueError, match="not simple: edges 0 and 2 intersect"):
        geo.Polygon([[0, 0], [3, 0], [1, 2], [1, -1]])
    with pytest.raises(ValueError, match="not simple: edges 1 and 2 overlap"):
        geo.Polygon([[0, 0], [2, 0], [2, 2], [2, 1], [0, 1]])  # spike back along an edge
    with pytest.raises(ValueError, match="not simple"):
        geo.Polygon([[0, 0], [2, 0], [2, 2], [1, 0], [0, 2]])  # vertex touching an edge
    with pytest.raises(ValueError, match="not simple"):
        geo.Polygon([[0, 0], [1, 0], [2, 0]])  # degenerate, zero area
    with pytest.raises(ValueError, match="repeated consecutive vertices"):
        geo.Polygon([[0, 0], [1, 0], [1, 0], [0, 1]])
    with pytest.raises(ValueError, match=r"radius_fn must be > 0"):
        geo.StarDomain(lambda t: torch.cos(t))
    with pytest.raises(ValueError, match="2\\*pi-periodic"):
        geo.StarDomain(lambda t: 1 + t)
    with pytest.raises(ValueError, match="shaped like its input"):
        geo.StarDomain(lambda t: torch.ones(3))
    rect = geo.Rectangle([0, 0], [1, 1])
    with pytest.raises(
        ValueError, match="unknown method 'halton'; valid methods: 'sobol', 'uniform'"
    ):
        rect.sample_interior(4, method="halton")
    with pytest.raises(ValueError, match="'sobol', 'uniform', 'grid'"):
        rect.sample_boundary(4, method="halton")
    with pytest.raises(ValueError, match="'sobol', 'uniform'$"):
        rect.sample_interior(4, method="grid")
    msg = r"unknown face 'front'.*valid faces: 'left', 'right', 'bottom', 'top'"
    with pytest.raises(ValueError, match=msg):
        rect.sample_face("front", 4)
    with pytest.raises(ValueError, match="unknown face 'x2-'"):
        rect.sample_face("x2-", 4)
    with pytest.raises(ValueError, match="unknown face 'edge6'"):
        DOMAINS["polygon_l"].sample_face("edge6", 4)
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        rect.sample_interior(-1)
    with pytest.raises(ValueError, match="n must be >= 0, got -5"):
        rect.sample_boundary(-5)
    with pytest.raises(TypeError, match="n must be an int"):
        rect.sample_interior(2.5)
