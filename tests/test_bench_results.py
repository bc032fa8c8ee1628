"""bench/run_problems.py's trajectory, bench/results_table.py's time-to-target and
bench/evaluator.py's errors, on poisson with few epochs."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import evaluator  # noqa: E402
import results_table  # noqa: E402
import run_problems  # noqa: E402


def test_trace_records_every_n_epochs_and_the_last_with_training_seconds(tmp_path):
    out = str(tmp_path)
    argv = ["poisson", "--formulations", "flux", "--epochs", "7", "--trace-every", "3"]
    assert run_problems.main([*argv, "--out", out, "--threads", "1"]) == 0
    res = json.load(open(os.path.join(out, "poisson", "flux", "results.json")))
    traj = res["trajectory"]
    assert [p["epoch"] for p in traj] == [3, 6, 7]
    secs = [p["train_s"] for p in traj]
    assert all(0 < a < b for a, b in zip(secs, secs[1:], strict=False))
    assert secs[-1] <= res["wall_time_s"]  # evaluation time is left out
    assert traj[-1]["errors"]["u"] == res["errors"]["u"]  # the final record is the result
    saved = json.load(open(os.path.join(out, "poisson", "flux", "trajectory.json")))
    assert saved == traj


def test_stop_after_ends_the_run_early(tmp_path):
    argv = ["poisson", "--formulations", "flux", "--epochs", "100000", "--stop-after", "0.5"]
    assert run_problems.main([*argv, "--out", str(tmp_path), "--threads", "1"]) == 0
    res = json.load(open(os.path.join(str(tmp_path), "poisson", "flux", "results.json")))
    assert 1 <= res["epochs"] < 100000


def test_first_reached_needs_every_field_at_or_below_its_target():
    traj = [
        {"epoch": 1, "train_s": 1.0, "errors": {"u": 1e-3, "v": 1e-5}},
        {"epoch": 2, "train_s": 2.0, "errors": {"u": 1e-5, "v": 1e-3}},
        {"epoch": 3, "train_s": 3.0, "errors": {"u": 1e-4, "v": 1e-4}},
    ]
    assert results_table.first_reached(traj, {"u": 1e-4, "v": 1e-4})["epoch"] == 3
    assert results_table.first_reached(traj, {"u": 1e-6}) is None
    assert results_table.first_reached(traj, {}) is None
    goal = results_table.targets("cavity", {"errors": {}})
    assert goal == {k: 0.02 for k in results_table.CAVITY_KEYS}


def test_settings_names_what_differs_from_the_reference_method():
    assert results_table.settings({"optimizer": "lbfgs", "seed": 0}) == ""
    got = results_table.settings(
        {"optimizer": "ssbroyden", "optimizer_options": {"curvature_eps": 1e-12}, "seed": 3}
    )
    assert got == " (ssbroyden; curvature_eps 1e-12; seed 3)"
    switched = {
        "optimizer": "lbfgs",
        "then_optimizer": "ssbroyden",
        "switched_at_epoch": 1200,
        "then_optimizer_options": {"tolerance_grad": 0},
    }
    got = results_table.settings(switched)
    assert got == " (lbfgs; after epoch 1200: ssbroyden; tolerance_grad 0)"
    got = results_table.settings({"problem_overrides": {"n_interior": 10000, "ic_form": "squared"}})
    assert got == " (n_interior 10000, ic_form squared)"


def test_run_problems_switch_and_problem_defaults_reach_the_run(tmp_path):
    argv = ["poisson", "--formulations", "flux", "--epochs", "4", "--trace-every", "2"]
    argv += ["--then-optimizer", "ssbroyden", "--switch-epoch", "2"]
    argv += ["--problem-default", "width=8", "--problem-default", "n_interior=64"]
    assert run_problems.main([*argv, "--out", str(tmp_path), "--threads", "1"]) == 0
    res = json.load(open(os.path.join(str(tmp_path), "poisson", "flux", "results.json")))
    assert res["switched_at_epoch"] == 2 and res["then_optimizer"] == "ssbroyden"
    assert res["net"][1] == 8 and res["problem_overrides"] == {"width": 8, "n_interior": 64}
    with pytest.raises(SystemExit):
        run_problems.main(["poisson", "--problem-default", "width"])


def test_run_problems_resample_redraws_the_points_and_records_it(tmp_path):
    argv = ["poisson", "--formulations", "flux", "--epochs", "4", "--threads", "1"]
    argv += ["--problem-default", "width=8", "--problem-default", "n_interior=64"]
    finals = {}
    for label, extra in (("plain", []), ("redrawn", ["--resample-every", "2"])):
        out = str(tmp_path / label)
        assert run_problems.main([*argv, *extra, "--out", out]) == 0
        res = json.load(open(os.path.join(out, "poisson", "flux", "results.json")))
        finals[label] = res["final_loss"]
        assert res["resample_every"] == (2 if extra else None)
        assert res["resample_keep_optimizer"] is False
    assert finals["plain"] != finals["redrawn"]  # epochs 3 and 4 ran on other points
    with pytest.raises(SystemExit):
        run_problems.main(["poisson", "--resample-every", "0"])


def test_matrix_norm_is_the_ratio_of_largest_singular_values():
    exact = torch.ones(4, 4, dtype=torch.float64)
    pred = exact + torch.eye(4, dtype=torch.float64) * 0.1
    # ||0.1 I||_2 / ||ones||_2 = 0.1 / 4; the Frobenius ratio would be 0.2 / 4
    val = evaluator.matrix_relative_error(pred.reshape(-1), exact.reshape(-1), (4, 4))
    assert val == pytest.approx(0.025, rel=1e-12)
