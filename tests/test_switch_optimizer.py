"""Switching optimizers during a run (SolveOptions.then_optimizer, training.SwitchOptimizer):
the switch happens at the epoch asked for, resumes give the uninterrupted result on either side
of it, and bad combinations are refused with a clear message."""

from __future__ import annotations

import json
import os
import warnings

import pytest
import torch

from fluxkern import cli, problems, solver
from fluxkern.optim import LBFGS, SSBroyden
from fluxkern.training import Callback, SwitchOptimizer

SWITCH = {"then_optimizer": "ssbroyden", "switch_epoch": 2, "progress": False, "plots": False}


def small_poisson() -> problems.Problem:
    p = problems.get("poisson")
    p.defaults = {**p.defaults, "n_interior": 64, "n_boundary": 32}
    p.width, p.depth = 8, 2
    return p


class Seen(Callback):
    """Records the trainer's optimizer class after each epoch (callbacks after the switch)."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.last = None

    def on_epoch_end(self, trainer, record):
        self.kinds.append(type(trainer.optimizer).__name__)
        self.last = trainer.optimizer


def test_the_optimizer_changes_after_the_switch_epoch():
    seen = Seen()
    out = solver.solve(small_poisson(), epochs=4, callbacks=[seen], **SWITCH)
    # solve's switch runs before the caller's callbacks: epoch 2 ends with the new optimizer
    assert seen.kinds == ["LBFGS", "SSBroyden", "SSBroyden", "SSBroyden"]
    assert out["switched_at_epoch"] == 2
    assert out["then_optimizer"] == "ssbroyden" and out["optimizer"] == "lbfgs"


def test_switch_differs_from_no_switch_and_from_the_second_alone():
    a = solver.solve(small_poisson(), epochs=4, **SWITCH)
    b = solver.solve(small_poisson(), epochs=4, progress=False, plots=False)
    c = solver.solve(small_poisson(), epochs=4, optimizer="ssbroyden", progress=False, plots=False)
    assert a["final_loss"] != b["final_loss"] and a["final_loss"] != c["final_loss"]
    assert b["switched_at_epoch"] is None


@pytest.mark.parametrize("stop", [1, 2, 3])
def test_resume_before_at_and_after_the_switch(tmp_path, stop):
    full = solver.solve(small_poisson(), epochs=4, out=str(tmp_path / "full"), **SWITCH)
    part = str(tmp_path / "part")
    solver.solve(small_poisson(), epochs=stop, out=part, **SWITCH)
    resumed = solver.solve(small_poisson(), epochs=4, out=part, resume=True, **SWITCH)
    assert resumed["final_loss"] == full["final_loss"]
    assert resumed["switched_at_epoch"] == 2
    a = torch.load(os.path.join(tmp_path, "full", "checkpoint.pt"), weights_only=False)
    b = torch.load(os.path.join(part, "checkpoint.pt"), weights_only=False)
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k


def test_resume_after_a_switch_without_it_is_refused(tmp_path):
    part = str(tmp_path / "part")
    solver.solve(small_poisson(), epochs=3, out=part, **SWITCH)
    with pytest.raises(solver.RunFileError, match="after a switch of optimizer"):
        solver.solve(small_poisson(), epochs=4, out=part, resume=True, progress=False)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"switch_epoch": 3}, "need a then_optimizer"),
        ({"then_optimizer_options": {"max_iter": 3}}, "need a then_optimizer"),
        ({"then_optimizer": "ssbroyden"}, "needs switch_epoch"),
        ({"then_optimizer": "ssbroyden", "switch_epoch": -1}, "needs switch_epoch"),
        ({"then_optimizer": "newton", "switch_epoch": 1}, "then_optimizer must be one of"),
        (
            {"then_optimizer": "ssbroyden", "switch_epoch": 1, "then_optimizer_options": {"x": 1}},
            "then_optimizer_options: ssbroyden takes no 'x'",
        ),
        (
            # then_optimizer runs distributed since the one solve pipeline (test_distributed)
            {"then_optimizer": "gauss_newton", "switch_epoch": 1, "distributed": True},
            "gauss_newton evaluates the loss itself and does not all-reduce it",
        ),
    ],
)
def test_bad_switch_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        solver.solve(small_poisson(), epochs=1, progress=False, **options)


def test_then_optimizer_options_reach_the_second_optimizer():
    seen = Seen()
    opts = {"max_iter": 3, "curvature_eps": 1e-12}
    kw = {**SWITCH, "switch_epoch": 1}
    solver.solve(small_poisson(), epochs=2, then_optimizer_options=opts, callbacks=[seen], **kw)
    assert isinstance(seen.last, SSBroyden)
    assert seen.last.defaults["max_iter"] == 3
    assert seen.last.defaults["curvature_eps"] == 1e-12


def test_switch_callback_at_zero_switches_before_the_first_step():
    from fluxkern.lagrangian import AugmentedLagrangian

    p = small_poisson()
    trainer = solver.make_trainer(p, solver.effective_options(p, progress=False))
    assert isinstance(trainer.optimizer, LBFGS)
    assert isinstance(trainer.al, AugmentedLagrangian)
    trainer.fit(1, [SwitchOptimizer(0, lambda t: SSBroyden(t.params))])
    assert isinstance(trainer.optimizer, SSBroyden) and trainer.switched_at == 0
    with pytest.raises(ValueError, match="non-negative integer"):
        SwitchOptimizer(-1, lambda t: SSBroyden(t.params))


def test_cli_switch_and_config(tmp_path, monkeypatch, capsys):
    small = small_poisson()
    monkeypatch.setattr(problems, "get", lambda name: small)
    cfg = tmp_path / "c.toml"
    cfg.write_text('then_optimizer = "ssbroyden"\n[then_optimizer_options]\nmax_iter = 4\n')
    out = tmp_path / "run"
    argv = ["solve", "poisson", "--epochs", "3", "--switch-epoch", "1", "--config", str(cfg)]
    code = cli.main([*argv, "--out", str(out), "--no-progress", "--no-plots"])
    assert code == 0, capsys.readouterr()
    res = json.load(open(out / "results.json"))
    assert res["switched_at_epoch"] == 1 and res["then_optimizer_options"] == {"max_iter": 4}
    capsys.readouterr()
    assert cli.main([*argv, "--print-config"]) == 0
    text = capsys.readouterr().out
    assert 'then_optimizer = "ssbroyden"' in text and "switch_epoch = 1" in text
    assert "[then_optimizer_options]" in text and "max_iter = 4" in text
    assert cli.main(["solve", "poisson", "--switch-epoch", "2", "--no-progress"]) == 2
    assert "need a then_optimizer" in capsys.readouterr().err


def test_dense_quasi_newton_with_a_signed_constraint_warns():
    p = problems.get("composite_heat")  # the method's signed initial condition, asked for:
    signed = {"problem_options": {"ic_form": "signed"}}  # (the default run's is squared)
    with pytest.warns(UserWarning, match="signed constraint.*initial"):
        solver.make_trainer(p, solver.effective_options(p, optimizer="ssbroyden", **signed))
    with pytest.warns(UserWarning, match="ssbroyden"):
        opts = solver.effective_options(
            p, optimizer="lbfgs", then_optimizer="ssbroyden", switch_epoch=3, **signed
        )
        solver.make_trainer(p, opts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solver.make_trainer(p, solver.effective_options(p, optimizer="lbfgs", **signed))
        q = problems.get("composite_heat")
        q.defaults = {**q.defaults, "ic_form": "squared"}
        solver.make_trainer(q, solver.effective_options(q, optimizer="ssbroyden"))
