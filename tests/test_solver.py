"""The training loop: determinism, checkpoint and resume, the non-finite stop, outputs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from fluxkern import problems, solver
from fluxkern.training import Resample


def small_poisson(**defaults) -> problems.Problem:
    p = problems.get("poisson")
    p.defaults = {**p.defaults, "n_interior": 64, "n_boundary": 32, **defaults}
    p.width, p.depth = 8, 2
    return p


def test_two_runs_with_one_seed_are_identical():
    a = solver.solve(small_poisson(), epochs=3, progress=False)
    b = solver.solve(small_poisson(), epochs=3, progress=False)
    assert a["errors"] == b["errors"] and a["final_loss"] == b["final_loss"]
    c = solver.solve(small_poisson(), epochs=3, progress=False, seed=1)
    assert c["final_loss"] != a["final_loss"]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_resume_gives_the_uninterrupted_result(tmp_path, optimizer):
    full = solver.solve(
        small_poisson(),
        epochs=6,
        optimizer=optimizer,
        progress=False,
        out=str(tmp_path / "full"),
        plots=False,
    )
    part = str(tmp_path / "part")
    solver.solve(
        small_poisson(), epochs=3, optimizer=optimizer, progress=False, out=part, plots=False
    )
    resumed = solver.solve(
        small_poisson(),
        epochs=6,
        optimizer=optimizer,
        progress=False,
        out=part,
        resume=True,
        plots=False,
    )
    assert resumed["errors"] == full["errors"]
    assert resumed["final_loss"] == full["final_loss"]
    a = torch.load(os.path.join(tmp_path, "full", "checkpoint.pt"), weights_only=False)
    b = torch.load(os.path.join(part, "checkpoint.pt"), weights_only=False)
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    # wall times, and the unseen check's notes (a part run checks at its own last epoch)
    for key in ("time_s", "train_residual", "unseen_residual", "unseen_max_violation"):
        a["history"].pop(key), b["history"].pop(key)
    assert a["history"] == b["history"]


def test_loss_falls_and_outputs_are_written(tmp_path):
    out = str(tmp_path / "run")
    res = solver.solve(small_poisson(), epochs=15, progress=False, out=out)
    hist = json.load(open(os.path.join(out, "history.json")))
    assert hist["loss"][-1] < 0.1 * hist["loss"][0]
    saved = json.load(open(os.path.join(out, "results.json")))
    for key in (
        "problem",
        "formulation",
        "errors",
        "wall_time_s",
        "epochs",
        "optimizer",
        "dtype",
        "device",
        "backend",
        "seed",
        "versions",
    ):
        assert key in saved, key
    assert saved["errors"] == res["errors"] and res["errors"]["u"] < 0.5
    pred = np.load(os.path.join(out, "prediction.npz"))
    assert set(pred.files) == {"x", "y", "u", "q1", "q2"}
    assert all(pred[k].shape == (101, 101) for k in pred.files)
    for png in ("solution.png", "error.png", "history.png", "multipliers.png"):
        assert os.path.getsize(os.path.join(out, png)) > 1000, png
    assert not any(f.endswith(".tmp") for f in os.listdir(out))
    saved_model = torch.load(os.path.join(out, "model.pt"), weights_only=False)
    assert saved_model["problem"] == "poisson" and "flux" in saved_model["dual"]["state"]


def test_callback_sees_every_epoch_and_can_stop_the_run(tmp_path):
    seen = []

    def stop_at_three(epoch, model):
        assert isinstance(model, torch.nn.Module)
        seen.append(epoch)
        return epoch == 3

    res = solver.solve(
        small_poisson(), epochs=10, progress=False, callback=stop_at_three, out=str(tmp_path)
    )
    assert seen == [1, 2, 3]
    assert res["epochs"] == 3 and res["stopped_by_callback"] is True
    assert torch.load(tmp_path / solver.CHECKPOINT, weights_only=False)["epoch"] == 3
    # the same three epochs without a callback give the same network
    plain = solver.solve(small_poisson(), epochs=3, progress=False)
    assert plain["final_loss"] == res["final_loss"] and plain["stopped_by_callback"] is False


def test_pinn_form_runs():
    res = solver.solve(small_poisson(), epochs=5, formulation="pinn", progress=False)
    assert res["formulation"] == "pinn" and np.isfinite(res["errors"]["u"])


def fail_after(good_calls: int, failure: str = "nan") -> problems.Problem:
    """poisson with a PINN loss that fails after a number of evaluations: turns NaN, or raises
    KeyboardInterrupt (as Ctrl-C would)."""
    p = problems.get("poisson")
    p.defaults = {**p.defaults, "n_interior": 32, "n_boundary": 16}
    p.width, p.depth = 6, 1
    pinn_loss = p.pinn_loss

    def failing_pinn_loss(model, seed, dtype, device):
        inner = pinn_loss(model, seed, dtype, device)
        calls = {"n": 0}

        def loss():
            calls["n"] += 1
            if calls["n"] <= good_calls:
                return inner()
            if failure == "interrupt":
                raise KeyboardInterrupt
            return inner() * float("nan")

        return loss

    p.pinn_loss = failing_pinn_loss
    return p


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    out = str(tmp_path / "nan")
    with pytest.raises(solver.NonFiniteLossError, match="non-finite loss at epoch 3"):
        solver.solve(
            fail_after(good_calls=2),
            epochs=10,
            optimizer="adam",
            formulation="pinn",
            progress=False,
            out=out,
            checkpoint_every=1,
        )
    ck = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)
    assert ck["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in ck["model"].values())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"optimizer": "sgd"}, "optimizer must be one of lbfgs, adam"),
        ({"dtype": "float16"}, "dtype must be one of float32, float64"),
        ({"epochs": -1}, "epochs must be a non-negative integer"),
        ({"resume": True}, "resume needs an output folder"),
        ({"bogus": 1}, "unknown option 'bogus'"),
        ({"resample_every": 0}, "resample_every must be None or a positive integer"),
        ({"resample_every": True}, "resample_every must be None or a positive integer"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        solver.solve(small_poisson(), progress=False, **kwargs)


def test_interrupt_names_the_last_checkpoint_and_resume_continues(tmp_path):
    out = str(tmp_path / "int")
    with pytest.raises(solver.InterruptedRun, match=r"epoch 5; the last checkpoint \(epoch 4\)"):
        solver.solve(
            fail_after(good_calls=4, failure="interrupt"),
            epochs=10,
            optimizer="adam",
            formulation="pinn",
            progress=False,
            out=out,
            checkpoint_every=2,
        )
    res = solver.solve(
        fail_after(good_calls=100),
        epochs=6,
        optimizer="adam",
        formulation="pinn",
        progress=False,
        out=out,
        resume=True,
        plots=False,
    )
    assert res["epochs"] == 6


def test_file_errors_are_run_file_errors_and_keep_the_files(tmp_path):
    out = tmp_path / "run"
    solver.solve(small_poisson(), epochs=1, progress=False, out=str(out), plots=False)
    ck = out / solver.CHECKPOINT
    ck.write_bytes(ck.read_bytes()[:100])  # truncated
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    with pytest.raises(solver.RunFileError, match="not a readable checkpoint") as info:
        solver.solve(small_poisson(), epochs=2, progress=False, out=str(out), resume=True)
    assert isinstance(info.value, ValueError) and info.value.path == str(ck)
    assert str(info.value) == f"{ck}: {info.value.reason}"
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    with pytest.raises(solver.RunFileError, match="the output folder is an existing file"):
        solver.solve(small_poisson(), epochs=1, progress=False, out=str(ck))


def test_effective_options_are_what_solve_uses():
    opts = solver.effective_options(small_poisson(), epochs=7, lr=0.5)
    assert opts.epochs == 7 and opts.lr == 0.5 and opts.dual_options["eta"] == 1.0
    with pytest.raises(ValueError, match="dual_options: dual rule 'pecann'"):
        solver.effective_options("poisson", dual="pecann")
    cfg = {"mu": 1.0}
    assert solver.effective_options("poisson", dual="pecann", dual_options=cfg).dual == "pecann"


def test_resample_every_redraws_the_points_and_is_recorded(tmp_path):
    plain = solver.solve(small_poisson(), epochs=4, progress=False)
    kw = {"epochs": 4, "progress": False, "resample_every": 2}
    redrawn = solver.solve(small_poisson(), **kw, out=str(tmp_path), plots=False)
    kept = solver.solve(small_poisson(), **kw, resample_keep_optimizer=True)
    assert plain["resample_every"] is None and redrawn["resample_every"] == 2
    assert kept["resample_keep_optimizer"] is True
    assert plain["final_loss"] != redrawn["final_loss"] != kept["final_loss"]
    # the same as the callback given by hand: fluxkern.training.Resample after epochs 2 and 4
    by_hand = solver.solve(small_poisson(), epochs=4, progress=False, callbacks=[Resample(2)])
    assert by_hand["final_loss"] == redrawn["final_loss"]
    # a resumed run continues on the draw it had
    part = str(tmp_path / "part")
    solver.solve(small_poisson(), **{**kw, "epochs": 3}, out=part, plots=False)
    resumed = solver.solve(small_poisson(), **kw, out=part, plots=False, resume=True)
    assert resumed["final_loss"] == redrawn["final_loss"]
