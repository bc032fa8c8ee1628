"""Parameter continuation (fluxkern.training.Continuation, the `continuation` option): the
schedule, the loss it trains on, a resume, the checks that wait for it, the CLI and the config
file, and the refusals."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

from fluxkern import cli, config_file, problems, solver
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.options import effective_options
from fluxkern.problems.configure import configure
from fluxkern.training import Continuation
from fluxkern.training.continuation import continuing

FAST = {"progress": False, "plots": False, "checkpoint_every": 1}


def small(alpha: float = 1e-2) -> problems.Problem:
    """convection_diffusion on 64 grid points, a 8x2 net, with its own alpha `alpha`."""
    p = configure(problems.get("convection_diffusion"), {"n_interior": 64}, {"alpha": alpha}, ())
    p.width, p.depth = 8, 2
    return p


def test_the_schedule_is_geometric_and_ends_on_the_problems_value():
    cont = Continuation(small(1e-4), {"alpha": [1.0, 4]})
    seen = [cont.values_at(e).get("alpha") for e in range(6)]
    assert seen[:4] == pytest.approx([1.0, 1e-1, 1e-2, 1e-3])
    assert seen[4:] == [None, None]  # the problem's own from epoch 5 on
    assert cont.until == 4


def _loss_at(problem: problems.Problem, model: torch.nn.Module) -> float:
    al = AugmentedLagrangian(model, problem.flux_terms(0, torch.float64, torch.device("cpu")))
    return float(al().detach())


def test_the_loss_is_the_continued_problems_then_the_problems_own():
    p = small(1e-4)
    trainer = solver.make_trainer(p, effective_options(p, epochs=0))
    model = trainer.model
    cont = Continuation(p, {"alpha": [1.0, 2]})
    cont.on_start(trainer)
    start = configure(p, {}, {"alpha": 1.0}, ())
    assert float(trainer.al().detach()) == _loss_at(start, model)
    assert float(trainer.al().detach()) != _loss_at(p, model)
    trainer.epoch = 2
    cont.on_epoch_end(trainer, trainer_record(2))
    assert float(trainer.al().detach()) == _loss_at(p, model)


def trainer_record(epoch: int):
    from fluxkern.training.history import EpochRecord

    return EpochRecord(epoch=epoch, loss=0.0)


def test_a_resumed_run_is_the_uninterrupted_one(tmp_path):
    kw = {"continuation": {"alpha": [0.5, 4]}, "optimizer": "ssbroyden", **FAST}
    full = solver.solve(small(), epochs=6, out=str(tmp_path / "full"), **kw)
    part = str(tmp_path / "part")
    solver.solve(small(), epochs=2, out=part, **kw)
    resumed = solver.solve(small(), epochs=6, out=part, resume=True, **kw)
    assert resumed["final_loss"] == full["final_loss"]
    without = solver.solve(small(), epochs=6, optimizer="ssbroyden", **FAST)
    assert without["final_loss"] != full["final_loss"]  # the continuation changed the run


def test_the_unseen_check_waits_and_an_early_end_warns():
    p = small()
    with pytest.warns(UserWarning, match="during the continuation"):
        res = solver.solve(p, epochs=3, continuation={"alpha": [0.5, 10]}, **FAST)
    assert res["unseen"] == {"skipped": "the run ended during the parameter continuation"}
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*during the continuation")
        done = solver.solve(p, epochs=12, continuation={"alpha": [0.5, 10]}, **FAST)
    assert "skipped" not in done["unseen"] and done["unseen"]["epoch"] == 12


def test_continuing_reads_the_trainers_epoch():
    p = small()
    trainer = solver.make_trainer(p, effective_options(p, epochs=0))
    Continuation(p, {"alpha": [0.5, 3]}).on_start(trainer)
    assert not continuing(trainer)  # no epoch trained yet
    trainer.epoch = 3
    assert continuing(trainer)
    trainer.epoch = 4
    assert not continuing(trainer)


@pytest.mark.parametrize(
    "schedule, match",
    [
        ({"beta": [1.0, 2]}, "no parameter 'beta'"),
        ({"alpha": [0.0, 2]}, r"\[start, epochs\]"),
        ({"alpha": [0.1, 2.5]}, r"\[start, epochs\]"),
        ({"alpha": 0.1}, r"\[start, epochs\]"),
    ],
)
def test_bad_schedules_are_refused(schedule, match):
    with pytest.raises(ValueError, match=match):
        effective_options(small(), continuation=schedule)


def test_not_with_redraws():
    with pytest.raises(ValueError, match="not together.*--no-continuation"):
        effective_options(small(), continuation={"alpha": [0.5, 3]}, resample_every=5)


def test_the_problems_continuation_gives_way_to_the_callers_redraws():
    opts = effective_options("convection_diffusion", resample_every=20)
    assert opts.continuation == {} and opts.resample_every == 20


def test_the_pinn_form_trains_through_a_continuation():
    res = solver.solve(
        small(), epochs=3, formulation="pinn", continuation={"alpha": [0.5, 2]}, **FAST
    )
    assert res["continuation"] == {"alpha": [0.5, 2]} and res["epochs"] == 3


def test_convection_diffusion_continues_alpha_by_default():
    opts = effective_options("convection_diffusion")
    assert opts.continuation == {"alpha": [0.1, 100]}
    # a caller's table replaces the problem's ({} turns it off)
    assert effective_options("convection_diffusion", continuation={}).continuation == {}


def test_the_command_line_and_the_config_file(tmp_path, capsys):
    code = cli.main(
        ["solve", "convection_diffusion", "--continuation", "alpha=0.5:20", "--print-config"]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "[continuation]" in text and "alpha = [0.5, 20]" in text
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    assert config_file.load(str(cfg))["continuation"] == {"alpha": [0.5, 20]}
    assert cli.main(["solve", "convection_diffusion", "--no-continuation", "--print-config"]) == 0
    off = capsys.readouterr().out
    assert "[continuation]  # command line: none" in off
    cfg.write_text(off)
    assert config_file.load(str(cfg))["continuation"] == {}
    assert cli.main(["solve", "convection_diffusion", "--continuation", "alpha=0.5"]) == 2
    assert "NAME=START:EPOCHS" in capsys.readouterr().err


def test_the_example_trains_through_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    p = small()
    argv = ["solve", "convection_diffusion", "--epochs", "3", "--continuation", "alpha=0.5:2"]
    original = problems.resolve
    try:
        problems.resolve = lambda name: p  # type: ignore[assignment]
        code = cli.main([*argv, "--out", str(out), "--no-progress", "--no-plots"])
    finally:
        problems.resolve = original  # type: ignore[assignment]
    assert code == 0, capsys.readouterr()
    assert os.path.isfile(out / "results.json")


def test_the_automatic_redraws_wait_for_the_end_of_the_continuation(monkeypatch):
    from fluxkern.training import AutoRedraw

    p = small()
    trainer = solver.make_trainer(p, effective_options(p, epochs=0))
    Continuation(p, {"alpha": [0.5, 40]}).on_start(trainer)
    auto = AutoRedraw(None, 20)
    checked: list[int] = []
    monkeypatch.setattr(auto, "_check", lambda t: checked.append(t.epoch))
    for epoch in (20, 40, 60):
        trainer.epoch = epoch
        auto.on_epoch_end(trainer, trainer_record(epoch))
    assert checked == [60]  # epochs 20 and 40 trained on a continued alpha


def test_a_resume_with_another_continuation_is_refused(tmp_path):
    kw = {"optimizer": "ssbroyden", **FAST}
    out = str(tmp_path / "run")
    first = solver.solve(small(), epochs=2, out=out, continuation={"alpha": [0.5, 4]}, **kw)
    assert first["continuation"] == {"alpha": [0.5, 4]}
    with pytest.raises(ValueError, match="continuation differs"):
        solver.solve(
            small(), epochs=4, out=out, resume=True, continuation={"alpha": [0.9, 4]}, **kw
        )


def test_it_says_what_it_does_on_the_progress_display():
    class Notes:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def note(self, text: str) -> None:
            self.lines.append(text)

    p = small()
    trainer = solver.make_trainer(p, effective_options(p, epochs=0))
    notes = Notes()
    cont = Continuation(p, {"alpha": [0.5, 2]}, display=notes)  # type: ignore[arg-type]
    cont.on_start(trainer)
    assert notes.lines == [
        "continuation: alpha from 0.5 to 0.01 over epochs 1-2; the unseen-point check waits "
        "for its end"
    ]
    for epoch in (1, 2, 3):
        trainer.epoch = epoch
        cont.on_epoch_end(trainer, trainer_record(epoch))
    assert notes.lines[1:] == ["continuation done after epoch 2: the problem's own values"]
