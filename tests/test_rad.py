"""Residual-based adaptive redraws (fluxkern.training.rad, Resample(method="rad"),
resample_method = "rad"): the draw follows the residual, is deterministic, keeps shared point
sets shared, and a resumed run trains on the points it had."""

from __future__ import annotations

import math
import os

import pytest
import torch

import fluxkern as fk
from fluxkern import cli, solver
from fluxkern.training.rad import RadSettings, objective_groups, rad_draw, rad_probabilities

F64 = torch.float64
CPU = torch.device("cpu")
BAND = (0.3, 0.7)  # where the bump problem's residual lives (0.4 of the interval)

x = fk.inputs("x")
u, q = fk.outputs("u q")
f = fk.data("f")


def bump(p):
    """100 inside BAND, 0 outside: the residual of a zero network is this."""
    inside = (p[:, 0] > BAND[0]) & (p[:, 0] < BAND[1])
    return 100.0 * inside.to(p.dtype)


def terms(pts):
    xi = pts["interior"]
    return [
        fk.Objective("pde", q.d(x) - f, xi, data={"f": bump(xi)}),
        fk.Constraint("flux", q - u.d(x), xi),
        fk.Constraint("ends", u, pts["ends"]),
    ]


def bump_problem(n: int = 200) -> fk.problems.Problem:
    return fk.problem(
        name="bump",
        inputs="x",
        outputs="u q",
        domain=fk.geometry.Interval(0.0, 1.0),
        points={"interior": fk.Sample("interior", n), "ends": fk.Sample("boundary", 2)},
        terms=terms,
        width=8,
        depth=1,
        defaults={"epochs": 4},
    )


def zero_net() -> fk.MLP:
    """A network whose outputs are 0 everywhere: the residuals are the data alone."""
    net = fk.MLP(1, 2, 8, 1, dtype=F64)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    return net


def draw(problem):
    return lambda seed: problem.flux_terms(seed, F64, CPU)


def in_band(points: torch.Tensor) -> float:
    xs = points[:, 0]
    return float(((xs > BAND[0]) & (xs < BAND[1])).double().mean())


def test_probabilities_follow_the_residual_and_are_uniform_without_one():
    eps = torch.tensor([0.0, 1.0, 3.0], dtype=F64)
    p = rad_probabilities(eps, k=1.0, c=1.0)
    # eps / mean(eps) + c = (0, 0.75, 2.25) + 1, normalised
    assert torch.allclose(p, torch.tensor([1.0, 1.75, 3.25], dtype=F64) / 6.0)
    assert torch.allclose(rad_probabilities(eps, 2.0, 0.0), eps**2 / (eps**2).sum())
    flat = rad_probabilities(torch.zeros(4, dtype=F64), 1.0, 1.0)
    assert torch.allclose(flat, torch.full((4,), 0.25, dtype=F64))


def test_the_draw_goes_where_the_residual_is():
    prob, net = bump_problem(), zero_net()
    blocks, picked = rad_draw(net, draw(prob), 3, RadSettings(k=1.0, c=0.0))
    pde = next(b for b in blocks if b.name == "pde")
    assert pde.n == 200 and in_band(pde.points) == 1.0  # c = 0: only where r != 0
    half, _ = rad_draw(net, draw(prob), 3, RadSettings(k=1.0, c=1.0))
    share = in_band(next(b for b in half if b.name == "pde").points)
    # c = 1: weights r / mean(r) + 1 = 3.5 inside, 1 outside: 0.7 of the mass in the band
    assert 0.6 < share < 0.8
    plain = in_band(prob.flux_terms(3, F64, CPU)[0].points)
    assert abs(plain - 0.4) < 0.05
    # the data go with the points; the ends (not the objective's set) are a plain draw
    assert torch.equal(pde.data["f"], bump(pde.points))
    assert set(picked) == {"pde"} and picked["pde"].dtype == torch.int64


def test_blocks_on_one_set_keep_sharing_it_and_the_draw_is_deterministic():
    prob, net = bump_problem(), zero_net()
    assert objective_groups(prob.flux_terms(0, F64, CPU)) == [["pde", "flux"]]
    a, rows = rad_draw(net, draw(prob), 5)
    assert a[0].points is a[1].points  # one jet for pde and flux in the loss
    b, again = rad_draw(net, draw(prob), 5)
    assert torch.equal(rows["pde"], again["pde"])
    other = fk.MLP(1, 2, 8, 1, dtype=F64)  # not evaluated when the rows are given
    c, _ = rad_draw(other, draw(prob), 5, picked=rows)
    assert all(torch.equal(s.points, t.points) for s, t in zip(a, c, strict=True))
    with pytest.raises(ValueError, match="does not fit"):
        rad_draw(net, draw(prob), 5, scale=2, picked=rows)
    with pytest.raises(ValueError, match="RAD scale"):
        rad_draw(net, draw(prob), 5, scale=8)


def test_settings_are_checked():
    for bad in ({"k": -1.0}, {"c": math.inf}, {"candidates": 1}):
        with pytest.raises(ValueError, match="RAD"):
            RadSettings(**bad)


def test_solve_with_rad_and_resume_from_between_redraws_gives_the_uninterrupted_run(tmp_path):
    common = dict(
        epochs=5,
        progress=False,
        plots=False,
        optimizer="adam",
        resample_every=2,
        resample_method="rad",
        resample_final=0.0,
        unseen_check=False,
    )
    full = solver.solve(bump_problem(), out=str(tmp_path / "full"), **common)
    part = str(tmp_path / "part")
    solver.solve(bump_problem(), out=part, **{**common, "epochs": 3})  # checkpoint at 3
    resumed = solver.solve(bump_problem(), out=part, resume=True, **common)
    assert resumed["final_loss"] == full["final_loss"] and full["resample_method"] == "rad"
    assert math.isfinite(full["final_loss"]) and os.path.isfile(os.path.join(part, "model.pt"))
    other = solver.solve(bump_problem(), **{**common, "resample_method": "uniform"})
    assert other["final_loss"] != full["final_loss"]  # the rad draws are other points


def test_options_need_redraws_and_reach_the_command_line(capsys):
    with pytest.raises(ValueError, match="needs resample_every"):
        solver.effective_options(bump_problem(), resample_method="rad")
    with pytest.raises(ValueError, match="resample_final must be a fraction"):
        solver.effective_options(bump_problem(), resample_final=1.0)
    with pytest.raises(ValueError, match="resample_method must be one of"):
        solver.effective_options(bump_problem(), resample_method="rar")
    argv = ["solve", "poisson", "--resample-every", "5", "--resample-method", "rad"]
    code = cli.main([*argv, "--resample-final", "0.2", "--print-config"])
    out = capsys.readouterr().out
    assert code == 0 and 'resample_method = "rad"' in out and "resample_final = 0.2" in out
