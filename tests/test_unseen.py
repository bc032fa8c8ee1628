"""The unseen-point check (fluxkern.training.UnseenCheck): the residuals on fresh points beside
the training ones, its warning on a run that fits the points and not the equation between them,
its quiet on resolved runs, its history and results entries, and that it changes nothing."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

import fluxkern as fk
from fluxkern import problems, solver
from fluxkern.options import effective_options
from fluxkern.training import (
    Callback,
    History,
    Progress,
    Resample,
    UnseenCheck,
    UnseenPointsWarning,
    UnseenReport,
)
from fluxkern.training.history import EpochRecord
from fluxkern.training.unseen import HISTORY_KEYS, TermCheck, check_trained, redrawable

F64 = torch.float64
CPU = torch.device("cpu")
WIDTH = 0.1  # the layer's width: u = tanh((x - 1/2) / WIDTH)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def layer(n: int) -> fk.problem:
    """u'' = f on [0, 1] in flux form (q = u_x), u = tanh((x - 1/2) / WIDTH), on n interior
    Sobol points and the two fixed ends."""
    x = fk.inputs("x")
    u, q = fk.outputs("u q")
    f, g = fk.data("f g")

    def exact(p):
        s = torch.tanh((p[:, 0] - 0.5) / WIDTH)
        return {"u": s, "q": (1 - s * s) / WIDTH}

    def source(p):
        s = torch.tanh((p[:, 0] - 0.5) / WIDTH)
        return -2 * s * (1 - s * s) / WIDTH**2

    def terms(pts):
        xi, xe = pts["interior"], pts["ends"]
        return [
            fk.Objective("pde", q.d(x) - f, xi, data={"f": source(xi)}),
            fk.Constraint("flux", q - u.d(x), xi),
            fk.Constraint("ends", u - g, xe, data={"g": exact(xe)["u"]}),
        ]

    return fk.problem(
        name="layer",
        inputs="x",
        outputs="u q",
        domain=fk.geometry.Interval(0.0, 1.0),
        points={"interior": fk.Sample("interior", n), "ends": torch.tensor([[0.0], [1.0]])},
        terms=terms,
        exact=exact,
        width=16,
        depth=2,
    )


def small_poisson() -> problems.Problem:
    p = problems.get("poisson")
    p.defaults = {**p.defaults, "n_interior": 64, "n_boundary": 32}
    p.width, p.depth = 8, 2
    return p


def test_a_front_between_few_points_trains_to_a_tiny_loss_and_the_check_warns(capsys):
    """12 points across the layer: the loss reaches round-off, the answer is wrong between the
    points (u error ~9%), and the residuals on fresh points say so."""
    check = UnseenCheck()
    # resample_auto=False: the points stay fixed on purpose (with the default, the check's flag
    # at epoch 20 would turn residual-based redraws on: tests/test_auto_redraw.py)
    with pytest.warns(UnseenPointsWarning, match="not to be trusted between the collocation"):
        res = fk.solve(
            layer(12),
            epochs=30,
            progress=False,
            plots=False,
            resample_auto=False,
            callbacks=[check],
        )
    assert res["final_loss"] < 1e-20 and res["final_max_violation"] < 1e-20
    assert res["errors"]["u"] > 0.01  # wrong between the points
    report = check.report
    assert report is not None and report.untrustworthy and report.epoch == 30
    assert report.train_residual < 1e-10 and report.unseen_residual > 1.0
    assert report.residual_ratio > 1e6
    assert {t.name for t in report.suspect} == {"pde", "flux"}
    assert report.not_redrawn == ("ends",)  # fixed points: nothing unseen there
    assert [t.points for t in report.terms] == [22 * 12, 22 * 12]  # 22 draws: >= 256 points
    # the warning's line through the progress display
    trainer = solver.make_trainer(layer(12), effective_options(layer(12), epochs=8))
    progress = Progress(True)
    with pytest.warns(UnseenPointsWarning):
        trainer.fit(8, [UnseenCheck(display=progress), progress])
    err = capsys.readouterr().err
    assert "warning: layer (flux): the residuals on fresh points" in err
    assert "| unseen r " in err and " / train " in err


@pytest.mark.parametrize("case", ["layer", "poisson"])
def test_quiet_on_resolved_runs(case):
    """Enough points: the fresh residuals are the training ones within a small factor."""
    problem, epochs = (layer(256), 30) if case == "layer" else (small_poisson(), 30)
    check = UnseenCheck()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenPointsWarning)
        res = fk.solve(problem, epochs=epochs, progress=False, plots=False, callbacks=[check])
    report = check.report
    assert report is not None and not report.untrustworthy
    assert 0.2 < report.residual_ratio < 5
    for t in report.terms:
        assert t.bulk_ratio < 5, t
    if case == "layer":
        assert res["errors"]["u"] < 1e-3


def test_history_and_results_entries(tmp_path):
    check = UnseenCheck(every=2)
    fk.solve(
        small_poisson(), epochs=5, progress=False, plots=False, out=str(tmp_path), callbacks=[check]
    )
    saved = json.loads((tmp_path / "history.json").read_text())
    keys = list(saved)
    assert keys[:4] == ["loss", "max_violation", "lambda_min", "lambda_max"]
    assert keys[-3:] == list(HISTORY_KEYS)
    for key in HISTORY_KEYS:  # epochs 2, 4 and the last; null elsewhere
        assert len(saved[key]) == 5
        assert [v is None for v in saved[key]] == [True, False, True, False, False]
    report = check.report
    assert report is not None and report.epoch == 5
    assert saved["unseen_residual"][-1] == report.unseen_residual
    assert saved["train_residual"][-1] == report.train_residual
    assert saved["unseen_max_violation"][-1] == report.unseen_max_violation
    # the training figures are those of the run: its max |C| after the last epoch
    assert math.isclose(report.train_max_violation, saved["max_violation"][-1], rel_tol=1e-9)
    res = check.results()
    assert res["seed"] == 0 + 1_000_003 and res["every"] == 2 and not res["untrustworthy"]
    assert set(res["terms"]) == {"pde", "flux", "boundary"} and res["not_redrawn"] == []
    assert res["residual_ratio"] == res["unseen_residual"] / res["train_residual"]
    for name, term in res["terms"].items():
        assert term["rms_ratio"] == term["unseen_rms"] / term["train_rms"], name
        assert term["bulk_ratio"] == term["unseen_rms_bulk"] / term["train_rms"], name
    assert (
        "violation_ratio" in res["terms"]["flux"] and "violation_ratio" not in res["terms"]["pde"]
    )
    json.dumps(res, allow_nan=False)  # plain JSON
    # the notes round-trip through a checkpoint's history
    back = History.from_dict(saved)
    assert back.to_dict() == saved
    assert back.latest("unseen_residual") == (5, report.unseen_residual)


def test_history_notes():
    h = History([EpochRecord(1, 0.5), EpochRecord(2, 0.25), EpochRecord(3, 0.1)])
    assert "unseen_residual" not in h.to_dict() and h.latest("unseen_residual") is None
    h.note(2, unseen_residual=3.0, train_residual=None)
    d = h.to_dict()
    assert d["unseen_residual"] == [None, 3.0, None] and d["train_residual"] == [None] * 3
    assert h.latest("unseen_residual") == (2, 3.0) and h.latest("train_residual") is None
    with pytest.raises(ValueError, match="field of the epoch records"):
        h.note(1, loss=1.0)
    with pytest.raises(ValueError, match="unseen_residual does not hold 3 epochs"):
        History.from_dict({**d, "unseen_residual": [1.0]})


def test_the_check_changes_nothing():
    """Bitwise the same weights, multipliers, optimizer state and global random state with and
    without the check, also with Resample and a point set drawn from torch's global RNG."""
    x, y = fk.inputs("x y")
    u, q1, q2 = fk.outputs("u q1 q2")

    def interior(seed, dtype, device):  # draws from the global generator on purpose
        return torch.rand(48, 2, dtype=dtype, device=device)

    def terms(pts):
        xi, xb = pts["interior"], pts["boundary"]
        return [
            fk.Objective("pde", q1.d(x) + q2.d(y) + 1.0, xi),
            fk.Constraint("flux", [q1 - u.d(x), q2 - u.d(y)], xi),
            fk.Constraint("boundary", u, xb),
        ]

    problem = fk.problem(
        name="rng",
        inputs="x y",
        outputs="u q1 q2",
        domain=fk.geometry.Rectangle([0.0, 0.0], [1.0, 1.0]),
        points={"interior": interior, "boundary": fk.Sample("boundary", 32)},
        terms=terms,
        width=8,
        depth=2,
    )

    def run(with_check: bool):
        opts = effective_options(problem, epochs=6)
        trainer = solver.make_trainer(problem, opts)
        cbs = [Resample(3)] + ([UnseenCheck(every=1)] if with_check else [])
        trainer.fit(6, cbs)
        return trainer, torch.get_rng_state()

    (a, rng_a), (b, rng_b) = run(False), run(True)
    assert torch.equal(rng_a, rng_b)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    sa, sb = a.al.state_dict()["state"], b.al.state_dict()["state"]
    for name in sa:
        for key in sa[name]:
            assert torch.equal(sa[name][key], sb[name][key]), (name, key)
    oa, ob = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert oa.keys() == ob.keys()
    for i in oa:
        for key, val in oa[i].items():
            other = ob[i][key]
            if isinstance(val, torch.Tensor):
                assert torch.equal(val, other), key
            elif isinstance(val, list):
                assert all(torch.equal(s, t) for s, t in zip(val, other, strict=True)), key
            else:
                assert val == other or (val != val and other != other), key
    assert a.history.column("loss") == b.history.column("loss")
    assert len(b.history.notes["unseen_residual"]) == 6


def test_rule():
    def term(train, bulk, name="pde"):
        return TermCheck(name, "objective", 1000, train, bulk * 10, bulk)

    quiet = UnseenReport(10, (term(1e-3, 5e-2),))  # 50x
    assert not quiet.untrustworthy
    loud = UnseenReport(10, (term(1e-6, 1e-3), term(1e-3, 1e-3, "other")))
    assert loud.untrustworthy and [t.name for t in loud.suspect] == ["pde"]
    assert "pde RMS 1.0e-03 vs 1.0e-06, 1000x" in loud.message("p (flux)")
    assert loud.message("p (flux)").startswith("p (flux): ")
    tiny = UnseenReport(10, (term(1e-12, 5e-5),))  # below the floor whatever the ratio
    assert not tiny.untrustworthy
    assert UnseenReport(10, (term(0.0, 1e-3),)).untrustworthy  # trained to exactly 0
    with pytest.raises(ValueError, match="trim"):
        UnseenCheck(trim=0.5)
    with pytest.raises(ValueError, match="every"):
        UnseenCheck(every=0)


def test_one_bad_point_is_not_a_wrong_answer():
    """A singular point (a corner, a kink) among the fresh points lifts the full RMS, not the
    rule's 0.5%-trimmed one."""
    problem = small_poisson()
    opts = effective_options(problem, epochs=20)
    trainer = solver.make_trainer(problem, opts)
    trainer.fit(20)
    report = check_trained(problem, trainer.model)
    assert not report.untrustworthy
    pde = report.terms[0]
    assert pde.name == "pde" and pde.points == 64 * 8  # 8 draws: 256 of the 32 boundary
    assert pde.unseen_rms_bulk <= pde.unseen_rms


def test_skipped_for_pinn_and_fixed_points():
    check = UnseenCheck()
    res = fk.solve(small_poisson(), epochs=2, formulation="pinn", progress=False, callbacks=[check])
    assert res["epochs"] == 2 and check.results() == {"skipped": check.skipped}
    assert "flux form" in check.skipped
    x = fk.inputs("x")
    u, q = fk.outputs("u q")
    pts = torch.linspace(0, 1, 9, dtype=F64)[:, None]
    fixed = fk.problem(
        name="fixed",
        inputs="x",
        outputs="u q",
        terms=[fk.Objective("pde", q.d(x) - 1.0, pts), fk.Constraint("flux", q - u.d(x), pts)],
        width=4,
        depth=1,
    )
    check = UnseenCheck()
    fk.solve(fixed, epochs=2, progress=False, callbacks=[check])
    assert "fixed points" in check.results()["skipped"]


def test_grid_point_sets_are_redrawn_as_sobol():
    p = problems.get("convection_diffusion")
    variant = redrawable(p)
    assert variant is not p and p._points["interior"].method == "grid"
    assert variant._points["interior"].method == "sobol"
    a = {b.name: b.points for b in p.flux_terms(0, F64, CPU)}
    b = {b.name: b.points for b in variant.flux_terms(1, F64, CPU)}
    assert a["pde"].shape == b["pde"].shape and not torch.equal(a["pde"], b["pde"])
    sobol = small_poisson()
    assert redrawable(sobol) is sobol


def test_a_draw_that_fails_turns_the_check_off_and_training_goes_on():
    problem = small_poisson()
    trainer = solver.make_trainer(problem, effective_options(problem, epochs=2))

    def sampler(seed):
        raise ValueError(f"no points for seed {seed}")

    check = UnseenCheck(sampler=sampler)
    with pytest.warns(UserWarning, match="unseen-point check off: the fresh points could not"):
        trainer.fit(2, [check])
    assert trainer.epoch == 2 and check.report is None
    assert "no points for seed 1000003" in check.results()["skipped"]


def test_the_warning_leaves_out_redraws_when_the_run_redraws():
    """A run that redraws its points already is told what else to change."""
    loud = UnseenReport(10, (TermCheck("pde", "objective", 1000, 1e-6, 1e-2, 1e-3),))
    assert "--resample-every 20" in loud.message()
    said = loud.message("p", redrawn=True)
    assert "--resample-every" not in said and "redraws its points already" in said

    class Redraws(Callback):
        redraws_points = True

    trainer = solver.make_trainer(layer(12), effective_options(layer(12), epochs=8))
    with pytest.warns(UnseenPointsWarning, match="redraws its points already"):
        trainer.fit(8, [UnseenCheck(), Redraws()])
    assert any(isinstance(cb, Redraws) for cb in trainer.callbacks)
