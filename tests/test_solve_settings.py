"""What the command line and a config reach: a time limit, point counts per point set, the
problem's own options and parameters; and history.json's per-epoch time and evaluations."""

from __future__ import annotations

import json

import pytest
import torch

from fluxkern import cli, problems, solver
from fluxkern.problems.configure import configure


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def tiny(name: str = "cavity") -> problems.Problem:
    p = problems.get(name)
    p.width, p.depth = 6, 1
    return p


def sizes(problem: problems.Problem, seed: int = 0) -> dict[str, int]:
    pts = problem.points(seed, torch.float64, torch.device("cpu"))
    return {k: int(pts[k].shape[0]) for k in problem.point_sets}


def test_points_by_set_name_and_by_count_key():
    base = tiny()
    before = sizes(base)
    p = configure(base, {"interior": 37, "n_face": 5}, {}, solver.option_names())
    after = sizes(p)
    assert after["interior"] == 37
    assert all(after[f] == 5 for f in ("left", "right", "bottom", "lid"))
    assert sizes(base) == before  # the problem given is not changed


def test_a_set_name_changes_only_that_set():
    p = configure(tiny(), {"left": 3}, {}, solver.option_names())
    got = sizes(p)
    assert got["left"] == 3 and got["right"] == tiny().defaults["n_face"]


def test_problem_options_and_parameters():
    p = configure(problems.get("helmholtz"), {}, {"k2": 2, "n_face": 8}, solver.option_names())
    assert p.k2 == 2 and p.defaults["n_face"] == 8
    assert problems.get("helmholtz").k2 == 1.0


@pytest.mark.parametrize(
    "points, options, match",
    [
        ({"wall": 3}, {}, "points: cavity has no point set or count 'wall'; valid: interior"),
        ({"corner": 3}, {}, "point set 'corner' is given as points, not drawn"),
        ({}, {"beta": 1.0}, "problem_options: cavity has no option or parameter 'beta'"),
        ({}, {"n_face": "many"}, "problem_options: n_face must be like 128 (int); got 'many'"),
        ({}, {"epochs": 3}, "has no option or parameter 'epochs'"),
    ],
)
def test_unknown_or_wrong_settings_are_refused(points, options, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        configure(tiny(), points, options, solver.option_names())


def test_a_time_limit_ends_the_run_with_its_results(capsys, tmp_path):
    out = tmp_path / "t"
    argv = ["solve", "poisson", "--out", str(out), "--no-progress", "--no-plots"]
    code, stdout, err = run(capsys, *argv, "--time-limit", "0.5", "--points", "interior=64")
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    assert res["stopped_by_callback"] and res["stop_reason"].startswith("time budget of 0.5 s")
    assert 1 <= res["epochs"] < 300 and res["wall_time_s"] >= 0.5
    assert res["time_limit"] == 0.5 and res["points"] == {"interior": 64}
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == res["epochs"]
    history = json.loads((out / "history.json").read_text())
    assert len(history["time_s"]) == len(history["evals"]) == res["epochs"]
    assert all(t > 0 for t in history["time_s"]) and all(e >= 1 for e in history["evals"])


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan"])
def test_a_bad_time_limit_is_one_line(capsys, value):
    code, _, err = run(capsys, "solve", "poisson", "--time-limit", value, "--print-config")
    assert code == 2 and "time_limit must be a positive number of seconds" in err


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--points", "interior"], "--points takes NAME=VALUE; got 'interior'"),
        (["--points", "interior=lots"], "--points takes NAME=N with N a whole number"),
        (["--points", "interior=-3"], "--points: N must be >= 0"),
        (["--problem-option", "=3"], "--problem-option takes NAME=VALUE"),
        (["--points", "nowhere=3"], "points: poisson has no point set or count 'nowhere'"),
    ],
)
def test_bad_settings_on_the_command_line_are_one_line(capsys, argv, match):
    code, _, err = run(capsys, "solve", "poisson", *argv, "--print-config")
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err


def test_settings_round_trip_through_a_config(capsys, tmp_path):
    argv = ["solve", "composite_heat", "--points", "interior=100", "--points", "n_side=7"]
    argv += ["--problem-option", "ic_form=squared", "--time-limit", "30"]
    code, text, err = run(capsys, *argv, "--print-config")
    assert code == 0, err
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    code, again, err = run(
        capsys, "solve", "composite_heat", "--config", str(cfg), "--print-config"
    )
    assert code == 0, err
    for line in ("interior = 100", "n_side = 7", 'ic_form = "squared"', "time_limit = 30.0"):
        assert line in again
    opts = solver.effective_options(
        "composite_heat",
        points={"interior": 100, "n_side": 7},
        problem_options={"ic_form": "squared"},
        time_limit=30.0,
    )
    # the command line's counts over the problem's (composite_heat's default run has 4x points)
    assert opts.points == {"n_interior": 8112, "n_side": 7, "n_initial": 1024, "interior": 100}
    assert opts.time_limit == 30.0
