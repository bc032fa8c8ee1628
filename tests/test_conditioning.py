"""The conditioning check (fluxkern.training.conditioning): under-resolution and badly scaled
outputs, on hand-built networks (exact figures) and at the end of fluxkern.solve runs."""

from __future__ import annotations

import json
import math
import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import fluxkern as fk
from fluxkern.training.conditioning import (
    CORNER_SPACINGS,
    LAYER_SEEN_BINS,
    MAGNITUDE_FACTOR,
    RESOLUTION_LIMIT,
    ConditioningWarning,
    check_conditioning,
    conditioning_results,
    redraw_method,
)
from fluxkern.training.resample import Resample

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def line(n: int = 12, exact=None) -> fk.problem:
    """A 1-D problem on [0, 1] with outputs u, v and n interior points (only its domain, names
    and point counts matter to the check of a hand-built network)."""
    x = fk.inputs("x")
    u, v = fk.outputs("u v")

    def terms(pts):
        xi = pts["interior"]
        return [fk.Objective("pde", u.d(x), xi), fk.Constraint("v", v, xi)]

    return fk.problem(
        name="line",
        inputs="x",
        outputs="u v",
        domain=fk.geometry.Interval(0.0, 1.0),
        points={"interior": fk.Sample("interior", n)},
        terms=terms,
        exact=exact,
        width=4,
        depth=1,
    )


def tanh_net(width: float, v_scale: float = 0.0, v_shift: float = 0.0) -> nn.Sequential:
    """u = tanh((x - 1/2) / width), v = v_scale * u + v_shift."""
    net = nn.Sequential(nn.Linear(1, 1), nn.Tanh(), nn.Linear(1, 2)).to(F64)
    with torch.no_grad():
        net[0].weight.fill_(1 / width)
        net[0].bias.fill_(-0.5 / width)
        net[2].weight.copy_(torch.tensor([[1.0], [v_scale]], dtype=F64))
        net[2].bias.copy_(torch.tensor([0.0, v_shift], dtype=F64))
    return net


def test_a_layer_narrower_than_the_spacing_is_under_resolved():
    """h = 1/12: a tanh layer of width w changes u by h / (2 w) of its range (2) per spacing."""
    r = check_conditioning(line(), tanh_net(0.01, v_shift=1.0), 12)
    u, v = r.outputs
    assert r.spacing == pytest.approx((1 / 12,))
    assert u.resolution == pytest.approx((1 / 12) / (2 * 0.01), rel=2e-3)  # 4.17
    assert abs(u.where[0] - 0.5) < 0.01  # at the layer
    assert v.resolution is None  # a constant output: no range
    assert r.under_resolved == [u] and r.flagged and not r.badly_scaled
    msg = r.message("line")
    assert msg.startswith("line: under-resolved: u changes by 4.2 times its range")
    # the fix: points that would bring it under half the limit, redraws, smoother fluxes
    n = r.suggested_points()
    assert n == math.ceil(12 * 2 * u.resolution / RESOLUTION_LIMIT)
    assert f"--points interior={n}" in msg and "--resample-method rad" in msg
    assert "flux-forms.md" in msg
    # a run that redraws its points already is told what else to do
    assert "--resample-every 20 --resample-method rad" in msg
    uniform = r.message("line", "uniform")
    assert "redraws its points uniformly already" in uniform and "--resample-every" not in uniform
    assert "(--resample-method rad)" in uniform
    rad = r.message("line", "rad")
    assert "by residual already" in rad and "--resample" not in rad and "--points" in rad
    run = SimpleNamespace(callbacks=[fk.training.Progress(False), Resample(10, method="rad")])
    assert redraw_method(run) == "rad" and redraw_method(SimpleNamespace(callbacks=[])) is None
    # the same layer with enough points is resolved
    assert not check_conditioning(line(), tanh_net(0.01), 2000).flagged


def test_a_smooth_answer_stays_quiet():
    r = check_conditioning(line(), tanh_net(0.2, v_scale=0.5), 12)
    assert r.outputs[0].resolution == pytest.approx((1 / 12) / 0.4, rel=0.05)  # ~0.21
    assert not r.flagged and r.message() == ""
    assert r.magnitude_ratio == pytest.approx(2.0, rel=1e-6)
    d = r.to_dict()
    assert d["flagged"] is False and d["message"] is None and d["under_resolved"] == []


def test_badly_scaled_outputs_are_named_with_the_rescaling():
    r = check_conditioning(line(), tanh_net(0.2, v_scale=1e-6), 12)
    assert r.magnitude_ratio == pytest.approx(1e6, rel=1e-6)
    assert r.badly_scaled and not r.under_resolved
    msg = r.message()
    assert "badly scaled: v (RMS" in msg and "1.0e+06 times smaller than u" in msg
    assert "v = " in msg and "* v_hat" in msg
    assert "--output-scale v=8e-07 (or write v = 8e-07 * v_hat" in msg
    # 1e3 apart: below the factor
    assert not check_conditioning(line(), tanh_net(0.2, v_scale=1e-3), 12).flagged
    assert MAGNITUDE_FACTOR == 1e4
    # a network that scales its outputs itself (an output_scale buffer, as fluxkern.MLP's):
    # the rule compares what its last layer produces, here O(1) for both
    net = tanh_net(0.2, v_scale=1e-6)
    net.register_buffer("output_scale", torch.tensor([1.0, 1e-6], dtype=F64))
    r = check_conditioning(line(), net, 12)
    assert r.outputs[1].raw_rms == pytest.approx(r.outputs[0].rms) and not r.flagged


def test_outputs_that_are_zero_in_the_answer_are_left_out():
    # v at round-off (below ZERO_FRACTION of u) without an exact solution: taken to be zero
    r = check_conditioning(line(), tanh_net(0.2, v_scale=1e-12), 12)
    assert r.outputs[1].zero and r.magnitude_ratio is None and not r.flagged

    # with an exact solution: v = 0 there decides (even where the network leaves 1e-6 of it)
    def exact(p):
        return {"u": torch.tanh((p[:, 0] - 0.5) / 0.2), "v": torch.zeros_like(p[:, 0])}

    r = check_conditioning(line(exact=exact), tanh_net(0.2, v_scale=1e-6), 12)
    assert r.outputs[1].zero and not r.flagged
    # ... and a v that is not zero in the answer is kept
    r = check_conditioning(line(exact=lambda p: {"v": 1e-6 * p[:, 0]}), tanh_net(0.2, 1e-6), 12)
    assert not r.outputs[1].zero and r.badly_scaled


def test_the_corners_are_left_out_in_two_dimensions():
    """u = tanh((x + y - 1.9) / w) only changes within CORNER_SPACINGS (3) spacings (0.15) of
    the corner (1, 1): no region is under-resolved, and the figure with the corner is reported
    beside."""
    # the line x + y = 1.9: inside the corner's 0.15 x 0.15
    sq, net = _square_layer(0.002 / 2**0.5, direction=(1.0, 1.0), level=1.9 / 2**0.5)
    assert CORNER_SPACINGS * 0.05 > 0.1  # h = 1 / sqrt(400)
    (o,) = check_conditioning(sq, net, 400).outputs
    assert o.step_all / o.range > 1 and (o.resolution or 0) < 1e-6
    assert o.to_dict()["resolution_all"] > RESOLUTION_LIMIT


def _square_layer(
    w: float, direction: tuple[float, float] = (1.0, 0.0), level: float | None = None
):
    """u = tanh((n . (x, y) - c) / w) on the unit square (n = direction / |direction|; c =
    level, default n . (1/2, 1/2): through the centre) and the problem whose 400 interior
    points the check scales its spacing by (h = 0.05)."""
    x, y = fk.inputs("x y")
    u = fk.outputs("u")
    sq = fk.problem(
        name="sq",
        inputs="x y",
        outputs="u",
        domain=fk.geometry.Rectangle((0.0, 0.0), (1.0, 1.0)),
        points={"interior": fk.Sample("interior", 400)},
        terms=lambda pts: [fk.Objective("pde", u.d(x), pts["interior"])],
        width=4,
        depth=1,
    )
    n = torch.tensor([direction], dtype=F64)
    n = n / n.norm()
    net = nn.Sequential(nn.Linear(2, 1), nn.Tanh(), nn.Linear(1, 1)).to(F64)
    with torch.no_grad():
        net[0].weight.copy_(n / w)
        net[0].bias.fill_(-(float(n.sum()) * 0.5 if level is None else level) / w)
        net[2].weight.fill_(1.0)
        net[2].bias.fill_(0.0)
    return sq, net


def _grid(side: int) -> torch.Tensor:
    g = (torch.arange(side, dtype=F64) + 0.5) / side
    return torch.cartesian_prod(g, g)  # [side^2, 2]


def _random(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 2, dtype=F64, generator=torch.Generator().manual_seed(seed))


def test_a_layer_across_which_the_training_points_lie_is_not_flagged():
    """A layer a quarter of the spacing wide (ratio 2) along y: a 20 x 20 grid puts no point in
    it (flagged), 400 random points put points at every depth of it (quiet, on every seed
    tried); without the points the ratio alone decides."""
    sq, net = _square_layer(0.0125)
    alone = check_conditioning(sq, net, 400)
    assert alone.outputs[0].resolution == pytest.approx(2.0, rel=1e-3) and alone.flagged
    assert alone.outputs[0].layer_points is None and ", where" not in alone.message()
    on_grid = check_conditioning(sq, net, 400, train_x=_grid(20))
    (o,) = on_grid.outputs
    assert on_grid.flagged and o.layer_points == 0 and o.layer_bins == 0
    assert o.layer_width == pytest.approx(0.025, rel=1e-3)  # range 2 over the slope 1 / w
    assert "where 0 training points lie within its layer (0.025 wide)" in on_grid.message()
    for seed in range(5):
        r = check_conditioning(sq, net, 400, train_x=_random(400, seed))
        (o,) = r.outputs
        assert not r.flagged and o.seen and o.layer_points >= 4, (seed, o)
        assert o.to_dict()["layer_bins"] >= LAYER_SEEN_BINS


def test_a_layer_too_thin_for_random_points_is_flagged():
    """The same layer ten times thinner (ratio 20): random points leave most of its depth
    empty, while an oblique grid of the same count sees a layer a quarter of the spacing wide
    (its rows cross the layer at many depths)."""
    sq, net = _square_layer(0.00125)
    for seed in range(5):
        r = check_conditioning(sq, net, 400, train_x=_random(400, seed))
        assert r.flagged and not r.outputs[0].seen, (seed, r.outputs[0])
    sq, net = _square_layer(0.0125, direction=(1.0, 0.37))
    r = check_conditioning(sq, net, 400, train_x=_grid(20))
    assert r.outputs[0].resolution > RESOLUTION_LIMIT and r.outputs[0].seen and not r.flagged


def test_a_layer_at_the_boundary_is_judged_by_its_slices_inside_the_domain():
    """u = tanh(x / w) on [0, 1]: the layer is centred on the end x = 0, so two of its four
    depth slices lie outside; 1001 points 0.001 apart fill both inside ones (quiet), while 12
    points with the end point the only one in the layer fill one of two (flagged: convection_
    diffusion's case, whose layer holds only its end point)."""
    net = nn.Sequential(nn.Linear(1, 1), nn.Tanh(), nn.Linear(1, 2)).to(F64)
    with torch.no_grad():
        net[0].weight.fill_(100.0)  # w = 0.01
        net[0].bias.fill_(0.0)
        net[2].weight.copy_(torch.tensor([[1.0], [0.0]], dtype=F64))
        net[2].bias.zero_()
    dense = torch.linspace(0.0, 1.0, 1001, dtype=F64)[:, None]
    r = check_conditioning(line(), net, 12, train_x=dense)
    (u, _) = r.outputs
    assert u.where == (0.0,) and u.resolution > RESOLUTION_LIMIT
    assert u.layer_bins_inside == 2 and u.layer_bins == 2 and u.seen and not r.flagged
    ends = torch.tensor([[0.0], [1.0]], dtype=F64)
    few = torch.cat([ends, (torch.arange(10, dtype=F64)[:, None] + 1) / 11])
    r = check_conditioning(line(), net, 12, train_x=few)
    (u, _) = r.outputs
    assert u.layer_points == 1 and u.layer_bins == 1 and u.layer_bins_inside == 2
    assert r.flagged and "where 1 training point lies within its layer" in r.message()


def _solve(problem, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fk.solve(problem, progress=False, plots=False, resample_auto=False, **kw)
    return res, [w for w in caught if issubclass(w.category, ConditioningWarning)]


def layer(n: int, width: float, small: float = 1.0) -> fk.problem:
    """u'' = f on [0, 1] in flux form (q = u_x), u = tanh((x - 1/2) / width), with a third
    output s = small * u, on n interior Sobol points and the two fixed ends."""
    x = fk.inputs("x")
    u, q, s = fk.outputs("u q s")
    f, g = fk.data("f g")

    def exact(p):
        t = torch.tanh((p[:, 0] - 0.5) / width)
        return {"u": t, "q": (1 - t * t) / width, "s": small * t}

    def terms(pts):
        xi, xe = pts["interior"], pts["ends"]
        t = torch.tanh((xi[:, 0] - 0.5) / width)
        return [
            fk.Objective("pde", q.d(x) - f, xi, data={"f": -2 * t * (1 - t * t) / width**2}),
            fk.Constraint("flux", q - u.d(x), xi),
            fk.Constraint("small", s - small * u, xi),
            fk.Constraint("ends", u - g, xe, data={"g": exact(xe)["u"]}),
        ]

    return fk.problem(
        name="layer",
        inputs="x",
        outputs="u q s",
        domain=fk.geometry.Interval(0.0, 1.0),
        points={"interior": fk.Sample("interior", n), "ends": torch.tensor([[0.0], [1.0]])},
        terms=terms,
        exact=exact,
        width=16,
        depth=2,
    )


def test_solve_warns_once_on_a_front_between_few_points(tmp_path):
    """12 points across a layer 0.01 wide (a sixth of the spacing): the trained network jumps
    between the points; results.json says so and the warning says what to change."""
    res, caught = _solve(layer(12, 0.01), epochs=30, out=str(tmp_path / "run"))
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert msg.startswith("layer (flux): under-resolved: ") and "--points interior=" in msg
    c = res["conditioning"]
    assert c["flagged"] and "u" in c["under_resolved"] and c["message"] in msg
    assert c["resolution"]["u"] > 2 and c["train_points"] == 12
    assert c["seconds"] < 1.0
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["conditioning"]["flagged"] and saved["conditioning"]["rms"].keys() == {
        "u",
        "q",
        "s",
    }


def test_solve_is_quiet_on_a_resolved_layer_and_off_without_the_unseen_check():
    res, caught = _solve(layer(64, 0.2), epochs=30)
    c = res["conditioning"]
    assert not caught and not c["flagged"] and c["message"] is None
    assert max(c["resolution"].values()) < 0.5
    res, caught = _solve(layer(64, 0.2), epochs=2, unseen_check=False)
    assert res["conditioning"] is None and not caught


def test_solve_warns_on_an_output_a_million_times_smaller():
    """s = 1e-6 u: the network leaves s far off (the same absolute accuracy as u), the magnitudes
    1e5-1e6 apart."""
    res, caught = _solve(layer(64, 0.2, small=1e-6), epochs=30)
    assert len(caught) == 1 and "badly scaled: s (RMS" in str(caught[0].message)
    assert res["conditioning"]["badly_scaled"] and res["conditioning"]["magnitude_ratio"] > 1e4


def test_a_line_on_stderr_with_progress(capsys):
    from fluxkern.solver import effective_options, make_trainer

    problem = layer(12, 0.01)
    trainer = make_trainer(problem, effective_options(problem, epochs=20))
    trainer.fit(20)
    with pytest.warns(ConditioningWarning):
        out = conditioning_results(trainer, fk.training.Progress(True).note)
    assert out["flagged"]
    assert "warning: layer (flux): under-resolved" in capsys.readouterr().err
