"""fluxkern.training: the Trainer, its History and the callbacks, alone and through solve()."""

from __future__ import annotations

import csv
import json
import math
import os

import pytest
import torch

import fluxkern
from fluxkern import problems, solver
from fluxkern.training import (
    Callback,
    CSVLogger,
    EarlyStopping,
    EpochRecord,
    History,
    Resample,
    StopTraining,
    TimeBudget,
    Trainer,
)


def small_poisson(**defaults) -> problems.Problem:
    p = problems.get("poisson")
    p.defaults = {**p.defaults, "n_interior": 48, "n_boundary": 24, **defaults}
    p.width, p.depth = 6, 1
    return p


def trainer_for(problem: problems.Problem | None = None, **options) -> Trainer:
    problem = problem or small_poisson()
    opts = solver.effective_options(problem, progress=False, plots=False, **options)
    return solver.make_trainer(problem, opts)


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def on_start(self, trainer):
        self.calls.append(("start", trainer.epoch))

    def on_epoch_end(self, trainer, record):
        self.calls.append(("epoch", record.epoch))

    def on_end(self, trainer):
        self.calls.append(("end", trainer.epoch))

    def on_error(self, trainer, exc):
        self.calls.append(("error", trainer.epoch))


def test_history_round_trips_through_dict_and_json():
    h = History([EpochRecord(1, 0.5, 0.1, -1.0, 2.0, 7, 0.01), EpochRecord(2, 0.25)])
    data = h.to_dict()
    # evals and time_s are saved since issue 27 asked history.json for them
    assert list(data) == ["loss", "max_violation", "lambda_min", "lambda_max", "evals", "time_s"]
    back = History.from_json(h.to_json())
    assert back[0].evals == 7 and back[0].time_s == 0.01
    assert back.column("loss") == [0.5, 0.25] and back[0].max_violation == 0.1
    assert back[1].epoch == 2 and math.isnan(back[1].lambda_max)
    assert json.loads(back.to_json()) == json.loads(h.to_json())
    with pytest.raises(ValueError, match="history has no lambda_max"):
        History.from_dict({"loss": [], "max_violation": [], "lambda_min": []})


def test_history_json_of_solve_is_the_trainers(tmp_path):
    seen = []
    res = fluxkern.solve(
        small_poisson(),
        epochs=3,
        progress=False,
        plots=False,
        out=str(tmp_path),
        callback=lambda epoch, model: seen.append(epoch),
    )
    saved = json.loads((tmp_path / "history.json").read_text())
    keys = ["loss", "max_violation", "lambda_min", "lambda_max", "evals", "time_s"]
    unseen = ["train_residual", "unseen_residual", "unseen_max_violation"]  # the unseen check's
    assert list(saved) == keys + unseen
    assert saved["loss"][-1] == res["final_loss"] and len(saved["loss"]) == 3
    assert seen == [1, 2, 3]


def test_step_records_one_epoch_and_fit_calls_every_hook():
    trainer = trainer_for()
    record = trainer.step()
    assert record.epoch == 1 and trainer.epoch == 1 and len(trainer.history) == 1
    assert record.evals >= 1 and record.time_s > 0 and math.isfinite(record.loss)
    assert record.max_violation >= 0 and record.lambda_min <= record.lambda_max
    rec = Recorder()
    trainer.fit(4, [rec])
    assert rec.calls == [("start", 1), ("epoch", 2), ("epoch", 3), ("epoch", 4), ("end", 4)]
    assert not trainer.stopped and trainer.history.column("epoch") == [1, 2, 3, 4]


def test_early_stopping_on_loss_and_violation():
    trainer = trainer_for()
    trainer.fit(10, [EarlyStopping(loss=1e9, max_violation=1e9)])
    assert trainer.epoch == 1 and trainer.stopped and "tolerance met" in trainer.stop_reason
    trainer = trainer_for()
    trainer.fit(3, [EarlyStopping(max_violation=-1.0)])  # never met
    assert trainer.epoch == 3 and not trainer.stopped
    with pytest.raises(ValueError, match="needs a loss or a max_violation"):
        EarlyStopping()


def test_early_stopping_through_solve_sets_stopped_by_callback():
    res = fluxkern.solve(
        small_poisson(),
        epochs=10,
        progress=False,
        plots=False,
        callbacks=[EarlyStopping(loss=1e9)],
    )
    assert res["epochs"] == 1 and res["stopped_by_callback"] is True


def test_time_budget_stops_after_the_epoch_past_it():
    trainer = trainer_for()
    trainer.fit(10, [TimeBudget(0.0)])
    assert trainer.epoch == 1 and "time budget" in trainer.stop_reason
    trainer = trainer_for()
    trainer.fit(2, [TimeBudget(3600)])
    assert trainer.epoch == 2 and not trainer.stopped


def test_stop_training_from_a_custom_callback_ends_after_all_callbacks_ran():
    class StopAtTwo(Callback):
        def on_epoch_end(self, trainer, record):
            if record.epoch == 2:
                raise StopTraining("enough")

    rec = Recorder()
    trainer = trainer_for()
    trainer.fit(5, [StopAtTwo(), rec])
    assert trainer.epoch == 2 and trainer.stop_reason == "enough"
    assert rec.calls[-2:] == [("epoch", 2), ("end", 2)]


def test_csv_logger_writes_one_row_per_epoch_and_appends_on_continue(tmp_path):
    path = str(tmp_path / "log.csv")
    trainer = trainer_for()
    trainer.fit(3, [CSVLogger(path)])
    trainer.fit(5, [CSVLogger(path)])  # continues: appends
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [float(r["loss"]) for r in rows] == trainer.history.column("loss")
    assert all(int(r["evals"]) >= 1 for r in rows)


def test_errors_reach_on_error_and_propagate():
    rec = Recorder()
    trainer = trainer_for(optimizer="adam")
    weight = trainer.params[0]
    trainer.set_loss(lambda: weight.sum() * float("nan"))
    with pytest.raises(fluxkern.training.NonFiniteLossError, match="non-finite loss at epoch 1"):
        trainer.fit(3, [rec])
    assert rec.calls == [("start", 0), ("error", 0)]


@pytest.mark.parametrize("multiplier", ["pointwise", "global"])
def test_resample_redraws_the_points_and_training_stays_finite(multiplier):
    problem = small_poisson()
    flux_terms = problem.flux_terms

    def terms(seed, dtype, device):
        blocks = flux_terms(seed, dtype, device)
        for b in blocks:
            if hasattr(b, "multiplier"):
                b.multiplier = multiplier
        return blocks

    problem.flux_terms = terms
    trainer = trainer_for(problem)
    al = trainer.al
    before = {k: b.x.clone() for k, b in al.bound.items()}
    shapes = {k: v.shape for k, v in al.multipliers.items()}
    resample = Resample(2)
    trainer.fit(5, [resample])
    assert resample.resampler.num_draws == 2  # after epochs 2 and 4 (seeds 1 and 2)
    assert all(not torch.equal(before[k], b.x) for k, b in al.bound.items())
    assert {k: v.shape for k, v in al.multipliers.items()} == shapes
    assert all(math.isfinite(v) for v in trainer.history.column("loss"))
    if multiplier == "pointwise":
        with pytest.raises(ValueError, match="pointwise multipliers"):
            trainer_for(problem).fit(3, [Resample(1, pointwise="error")])


def test_resample_of_a_pinn_loss_replaces_it():
    trainer = trainer_for(formulation="pinn", optimizer="adam")
    first = trainer.loss_fn
    trainer.fit(2, [Resample(1)])
    assert trainer.loss_fn is not first and trainer.al is None
    assert all(math.isfinite(v) for v in trainer.history.column("loss"))


def test_resample_through_solve_and_resume_gives_the_uninterrupted_run(tmp_path):
    common = dict(progress=False, plots=False, optimizer="adam")
    full = fluxkern.solve(
        small_poisson(), epochs=5, out=str(tmp_path / "full"), callbacks=[Resample(2)], **common
    )
    part = str(tmp_path / "part")
    fluxkern.solve(small_poisson(), epochs=3, out=part, callbacks=[Resample(2)], **common)
    resumed = fluxkern.solve(
        small_poisson(), epochs=5, out=part, resume=True, callbacks=[Resample(2)], **common
    )
    assert resumed["final_loss"] == full["final_loss"]
    assert os.path.isfile(os.path.join(part, "checkpoint.pt"))


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_resume_from_a_checkpoint_written_before_a_redraw(tmp_path, optimizer):
    common = dict(progress=False, plots=False, optimizer=optimizer, checkpoint_every=2)
    full = fluxkern.solve(
        small_poisson(), epochs=6, out=str(tmp_path / "full"), callbacks=[Resample(2)], **common
    )

    def interrupt_at_five(epoch, model):
        if epoch == 5:
            raise KeyboardInterrupt

    part = str(tmp_path / "part")
    with pytest.raises(solver.InterruptedRun, match=r"epoch 5; the last checkpoint \(epoch 4\)"):
        fluxkern.solve(
            small_poisson(),
            epochs=6,
            out=part,
            callbacks=[Resample(2)],
            callback=interrupt_at_five,
            **common,
        )
    resumed = fluxkern.solve(
        small_poisson(), epochs=6, out=part, resume=True, callbacks=[Resample(2)], **common
    )
    assert resumed["final_loss"] == full["final_loss"]


def test_set_terms_refuses_blocks_of_another_kind():
    trainer = trainer_for()
    terms = trainer.problem.flux_terms(1, torch.float64, torch.device("cpu"))
    with pytest.raises(ValueError, match="do not match"):
        trainer.al.set_terms(terms[:-1])
