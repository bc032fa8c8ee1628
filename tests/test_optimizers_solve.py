"""The curvature optimizers through fluxkern.solve and the CLI: they run, they reduce the loss,
they resume exactly, and the wrong combinations are refused with a clear message."""

from __future__ import annotations

import contextlib
import io
import json
import os

import pytest
import torch

from fluxkern import cli, problems, solver

NEW = ["ssbfgs", "ssbroyden", "gauss_newton"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


@pytest.mark.parametrize("optimizer", NEW)
def test_cli_takes_the_new_optimizers(capsys, tmp_path, monkeypatch, optimizer):
    small = small_poisson()
    monkeypatch.setattr(problems, "get", lambda name: small)
    out = tmp_path / "run"
    argv = ["solve", "poisson", "--optimizer", optimizer, "--epochs", "2", "--out", str(out)]
    code = cli.main([*argv, "--no-progress", "--no-plots"])
    assert code == 0, capsys.readouterr()
    assert json.load(open(out / "results.json"))["optimizer"] == optimizer


def test_optimizer_options_reach_the_optimizer_and_results():
    opts = solver.effective_options(
        small_poisson(), optimizer_options={"tolerance_grad": 0.0, "curvature_eps": 1e-12}
    )
    group = solver.make_trainer(small_poisson(), opts).optimizer.param_groups[0]
    assert group["tolerance_grad"] == 0.0 and group["curvature_eps"] == 1e-12
    assert group["max_iter"] == 20 and group["history_size"] == 100  # the defaults stay
    opts = solver.effective_options(
        small_poisson(), optimizer="ssbroyden", optimizer_options={"max_iter": 3}
    )
    assert solver.make_trainer(small_poisson(), opts).optimizer.param_groups[0]["max_iter"] == 3
    out = solver.solve(
        small_poisson(), epochs=1, progress=False, optimizer_options={"curvature_eps": 1e-12}
    )
    assert out["optimizer_options"] == {"curvature_eps": 1e-12}


@pytest.mark.parametrize(
    "optimizer, options, match",
    [
        ("lbfgs", {"self_scaling": False}, "lbfgs takes no 'self_scaling'"),
        ("gauss_newton", {"curvature_eps": 1e-12}, "valid: max_iter, damping"),
        ("adam", {"tolerance_grad": 0.0}, "adam takes no"),
        ("lbfgs", {"curvature_eps": 0.0}, "curvature_eps must be None or > 0"),
    ],
)
def test_bad_optimizer_options_are_refused(optimizer, options, match):
    with pytest.raises(ValueError, match=match):
        solver.solve(
            small_poisson(),
            epochs=1,
            optimizer=optimizer,
            optimizer_options=options,
            progress=False,
        )


def test_optimizer_options_in_a_config_file(tmp_path):
    from fluxkern import cli

    cfg = tmp_path / "c.toml"
    cfg.write_text('optimizer = "ssbroyden"\n[optimizer_options]\ntolerance_grad = 0.0\n')
    cmd = ["solve", "poisson", "--config", str(cfg), "--print-config"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(cmd) == 0
    assert "[optimizer_options]" in buf.getvalue() and "tolerance_grad = 0.0" in buf.getvalue()
