"""The automatic redraws (resample_auto, fluxkern.training.AutoRedraw): a run whose answer the
unseen-point check flags switches to residual-based redraws; a run it never flags trains exactly
as without them; a resumed run continues them."""

from __future__ import annotations

import math

import pytest
import torch

from fluxkern import cli, solver
from fluxkern.training import Callback
from test_unseen import layer, small_poisson

COMMON = dict(progress=False, plots=False)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class InteriorPoints(Callback):
    def __init__(self) -> None:
        self.points: dict[int, torch.Tensor] = {}

    def on_epoch_end(self, trainer, record):
        self.points[record.epoch] = trainer.al.bound["pde"].x.clone()


def test_a_flagged_run_turns_residual_based_redraws_on():
    """12 points across a layer: fixed, the answer is wrong between them and the check flags it
    (tests/test_unseen.py); with the automatic redraws the points move from the first check
    that flags it (epoch 20) and the answer gets better."""
    seen = InteriorPoints()
    res = solver.solve(layer(12), epochs=60, callbacks=[seen], **COMMON)
    assert res["resample_auto_from"] == 20 and res["resample_final_from"] == 54
    # (this callback runs after the redraws: its points at epoch e are those of epoch e + 1)
    assert torch.equal(seen.points[1], seen.points[19])  # fixed until the check flags it
    assert not torch.equal(seen.points[19], seen.points[20])  # a residual-based draw
    assert torch.equal(seen.points[20], seen.points[39])  # the next one after 40
    assert not torch.equal(seen.points[39], seen.points[40])
    assert seen.points[60].shape[0] == 24  # the final phase: twice the points
    fixed = solver.solve(layer(12), epochs=60, resample_auto=False, **COMMON)
    assert fixed["resample_auto_from"] is None
    assert res["errors"]["u"] < fixed["errors"]["u"] and math.isfinite(res["final_loss"])


def test_a_run_the_check_never_flags_trains_as_without_it():
    on = solver.solve(small_poisson(), epochs=45, **COMMON)
    off = solver.solve(small_poisson(), epochs=45, resample_auto=False, **COMMON)
    assert on["resample_auto_from"] is None and on["final_loss"] == off["final_loss"]


def test_a_resumed_run_continues_the_redraws(tmp_path):
    full = solver.solve(layer(12), epochs=50, out=str(tmp_path / "f"), checkpoint_every=5, **COMMON)

    def stop_at_35(epoch, model):
        return epoch == 35

    part = str(tmp_path / "p")
    solver.solve(layer(12), epochs=50, out=part, checkpoint_every=5, callback=stop_at_35, **COMMON)
    resumed = solver.solve(
        layer(12), epochs=50, out=part, checkpoint_every=5, resume=True, **COMMON
    )
    assert full["resample_auto_from"] == resumed["resample_auto_from"] == 20
    assert resumed["final_loss"] == full["final_loss"]


def test_the_command_line_turns_it_off(capsys):
    assert cli.main(["solve", "poisson", "--no-resample-auto", "--print-config"]) == 0
    assert "resample_auto = false  # command line" in capsys.readouterr().out
    assert solver.SolveOptions().resample_auto is True
