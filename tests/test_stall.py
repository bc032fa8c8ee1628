"""The stall check (fluxkern.training.stall): a run whose optimizer stopped on its absolute
tests every epoch while the loss barely fell warns; converged, Adam and short runs stay quiet."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import fluxkern as fk
from fluxkern import solver
from fluxkern.options import effective_options
from fluxkern.training import Progress
from fluxkern.training.stall import StallCheck, StalledRunWarning, stalled

PI = math.pi


def small_flux(k: float) -> fk.Problem:
    """-(k u')' = f on [0, 1], u = sin(pi x) + 0.2 sin(4 pi x), flux q = -k u' as an output:
    with k = 1e-4 every residual is small in absolute terms."""
    x = fk.inputs("x")
    u, q = fk.outputs("u q")
    f = fk.data("f")

    def sol(p):
        return torch.sin(PI * p[:, 0]) + 0.2 * torch.sin(4 * PI * p[:, 0])

    def exact(p):
        s = PI * torch.cos(PI * p[:, 0]) + 0.8 * PI * torch.cos(4 * PI * p[:, 0])
        return {"u": sol(p), "q": -k * s}

    def terms(pts):
        xi, xb = pts["interior"], pts["boundary"]
        s2 = -(PI**2) * torch.sin(PI * xi[:, 0]) - 3.2 * PI**2 * torch.sin(4 * PI * xi[:, 0])
        return [
            fk.Objective("pde", q.d(x) - f, xi, data={"f": -k * s2}),
            fk.Constraint("flux", q + k * u.d(x), xi),
            fk.Constraint("ends", u, xb),
        ]

    return fk.problem(
        name="small_flux",
        summary="-(k u')' = f",
        inputs="x",
        outputs="u q",
        domain=fk.geometry.Interval(0.0, 1.0),
        points={"interior": fk.Sample("interior", 64), "boundary": fk.Sample("boundary", 2)},
        terms=terms,
        exact=exact,
        eval_grid=128,
        width=10,
        depth=2,
    )


def test_rule():
    assert stalled([], []) is None
    assert stalled([1.0, 0.9], [0, 0]) is None  # evaluations not known (a resume)
    idle = stalled([4e-6] + [2.6e-6] * 29, [21, 8] + [1] * 28)
    assert idle is not None and idle.idle_epochs == 28 and idle.stalled
    assert "fell only 1.5x" in idle.message("p (flux)")
    assert "--optimizer auto" in idle.message()
    converged = stalled([1.0] + [1e-20] * 29, [21] + [1] * 29)  # round-off: fell by 1e20
    assert converged is not None and not converged.stalled
    working = stalled([1.0] * 30, [20] * 30)  # slow but every step searches
    assert working is not None and not working.stalled
    short = stalled([1.0] * 9, [1] * 9)
    assert short is not None and not short.stalled
    half = stalled([1.0] * 30, [20] * 16 + [1] * 14)  # idle less than half of the run
    assert half is not None and not half.stalled


def test_lbfgs_with_absolute_tests_on_a_small_problem_warns(capsys):
    """L-BFGS's default tests are met at the start: the loss stays ~1e-6 and u is wrong."""
    with pytest.warns(StalledRunWarning, match="stopping tests after one evaluation"):
        res = fk.solve(small_flux(1e-4), epochs=30, optimizer="lbfgs", progress=False, plots=False)
    assert res["errors"]["u"] > 0.5  # wholly wrong, with a small loss
    assert res["stall"]["stalled"] and res["stall"]["idle_epochs"] >= 15
    # the line through the progress display
    problem = small_flux(1e-4)
    trainer = solver.make_trainer(problem, effective_options(problem, epochs=30, optimizer="lbfgs"))
    progress = Progress(True)
    with pytest.warns(StalledRunWarning):
        trainer.fit(30, [StallCheck(display=progress), progress])
    assert (
        "warning: small_flux (flux): the optimizer met its stopping tests"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize("optimizer", ["auto", "adam"])
def test_quiet_when_the_optimizer_keeps_working(optimizer):
    """The scale-free tests keep searching (and Adam evaluates once a step by design)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", StalledRunWarning)
        res = fk.solve(
            small_flux(1e-4), epochs=30, optimizer=optimizer, progress=False, plots=False
        )
    assert res["stall"] is None or not res["stall"]["stalled"]


def test_quiet_on_a_converged_run():
    with warnings.catch_warnings():
        warnings.simplefilter("error", StalledRunWarning)
        res = fk.solve(small_flux(1.0), epochs=30, optimizer="lbfgs", progress=False, plots=False)
    assert not res["stall"]["stalled"]
    assert res["errors"]["u"] < 1e-2
