"""The curvature optimizers through fluxkern.solve and the CLI: they run, they reduce the loss,
they resume exactly, and the wrong combinations are refused with a clear message."""

from __future__ import annotations

import os

import pytest
import torch

from fluxkern import problems, solver

NEW = ["ssbfgs", "ssbroyden", "gauss_newton"]


def small_poisson() -> problems.Problem:
    p = problems.get("poisson")
    p.defaults = {**p.defaults, "n_interior": 64, "n_boundary": 32}
    p.width, p.depth = 8, 2
    return p


@pytest.mark.parametrize("optimizer", NEW)
def test_each_optimizer_trains_poisson(optimizer):
    out = solver.solve(small_poisson(), epochs=4, optimizer=optimizer, progress=False)
    start = solver.solve(small_poisson(), epochs=1, optimizer="adam", progress=False)
    assert out["final_loss"] < 0.1 * start["final_loss"]


@pytest.mark.parametrize("optimizer", NEW)
def test_resume_gives_the_uninterrupted_result(tmp_path, optimizer):
    kw = {"optimizer": optimizer, "progress": False, "plots": False}
    full = solver.solve(small_poisson(), epochs=4, out=str(tmp_path / "full"), **kw)
    part = str(tmp_path / "part")
    solver.solve(small_poisson(), epochs=2, out=part, **kw)
    resumed = solver.solve(small_poisson(), epochs=4, out=part, resume=True, **kw)
    assert resumed["final_loss"] == full["final_loss"]
    a = torch.load(os.path.join(tmp_path, "full", "checkpoint.pt"), weights_only=False)
    b = torch.load(os.path.join(part, "checkpoint.pt"), weights_only=False)
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k


def test_gauss_newton_refuses_pinn_and_lr():
    with pytest.raises(ValueError, match="flux formulation"):
        solver.solve(
            small_poisson(), epochs=1, optimizer="gauss_newton", formulation="pinn", progress=False
        )
    with pytest.raises(ValueError, match="no lr"):
        solver.solve(small_poisson(), epochs=1, optimizer="gauss_newton", lr=0.5, progress=False)


def test_unknown_optimizer_lists_the_choices():
    with pytest.raises(ValueError, match="ssbroyden.*gauss_newton"):
        solver.solve(small_poisson(), epochs=1, optimizer="newton", progress=False)
