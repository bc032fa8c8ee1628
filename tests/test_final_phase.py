"""The final phase of a run with redraws (fluxkern.training.FinalPhase, resample_final): the last
part of the run trains on one fixed set of twice the points, it starts by epochs or by the time
limit, and a run resumed inside it trains on the same set."""

from __future__ import annotations

import math

import pytest
import torch

from fluxkern import problems, solver
from fluxkern.training import Callback, FinalPhase


def small_poisson() -> problems.Problem:
    p = problems.get("poisson")
    p.defaults = {**p.defaults, "n_interior": 48, "n_boundary": 24}
    p.width, p.depth = 6, 1
    return p


class PointsSeen(Callback):
    """The interior points the loss holds after each epoch's callbacks (this one runs last)."""

    def __init__(self) -> None:
        self.points: dict[int, torch.Tensor] = {}

    def on_epoch_end(self, trainer, record):
        self.points[record.epoch] = trainer.al.bound["pde"].x.clone()


def test_due_by_epochs_or_by_time():
    phase = FinalPhase(0.25, 2, time_limit=100.0)
    assert phase.start_epoch(10) == 8  # ceil(0.75 * 10)
    assert not phase.due(7, 10, 10.0) and phase.due(8, 10, 10.0)
    assert phase.due(3, 10**9, 75.0) and not phase.due(3, 10**9, 74.9)
    assert not phase.due(10, 10, 99.0)  # no epoch left to train on it
    assert not FinalPhase(0.5).due(1, 10**9, 1e9)  # no time limit: epochs only
    for bad in ({"fraction": 0.0}, {"fraction": 1.0}, {"scale": 0}):
        with pytest.raises(ValueError, match="final phase"):
            FinalPhase(**bad)


@pytest.mark.parametrize("method", ["uniform", "rad"])
def test_the_last_part_of_the_run_keeps_one_set_of_twice_the_points(method):
    seen = PointsSeen()
    res = solver.solve(
        small_poisson(),
        epochs=10,
        optimizer="adam",
        resample_every=1,
        resample_method=method,
        resample_final=0.3,
        progress=False,
        plots=False,
        unseen_check=False,
        callbacks=[seen],
    )
    assert res["resample_final_from"] == 7 and math.isfinite(res["final_loss"])
    n = seen.points[1].shape[0]
    assert all(seen.points[e].shape[0] == n for e in range(1, 7))
    assert not torch.equal(seen.points[5], seen.points[6])  # redrawn every epoch before
    assert seen.points[7].shape[0] == 2 * n
    assert all(torch.equal(seen.points[7], seen.points[e]) for e in (8, 9, 10))


def test_final_zero_redraws_to_the_end_and_a_resume_inside_the_phase_continues_it(tmp_path):
    common = dict(
        optimizer="adam",
        resample_every=2,
        progress=False,
        plots=False,
        unseen_check=False,
        checkpoint_every=1,
    )
    off = solver.solve(small_poisson(), epochs=8, resample_final=0.0, **common)
    assert off["resample_final_from"] is None
    full = solver.solve(
        small_poisson(), epochs=8, resample_final=0.5, out=str(tmp_path / "f"), **common
    )
    assert full["resample_final_from"] == 4 and full["final_loss"] != off["final_loss"]

    def stop_at_six(epoch, model):
        return epoch == 6

    part = str(tmp_path / "p")
    solver.solve(
        small_poisson(), epochs=8, resample_final=0.5, out=part, callback=stop_at_six, **common
    )
    resumed = solver.solve(
        small_poisson(), epochs=8, resample_final=0.5, out=part, resume=True, **common
    )
    assert resumed["final_loss"] == full["final_loss"]
    assert resumed["resample_final_from"] == 4
