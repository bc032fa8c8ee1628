"""The fluxkern command: list, solve, and its one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fluxkern import cli, problems


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_prints_one_line_per_problem(capsys):
    code, out, _ = run(capsys, "list")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == len(problems.names())
    assert lines[0].startswith("poisson")


@pytest.mark.parametrize(
    "argv,match",
    [
        (["solve", "nope"], "unknown problem 'nope'; choose from poisson"),
        (["solve", "poisson", "--optimizer", "sgd"], "invalid choice: 'sgd'"),
        (["solve", "poisson", "--epochs", "ten"], "invalid int value: 'ten'"),
        (["solve", "poisson", "--epochs", "-2"], "--epochs must be >= 0"),
        (["solve", "poisson", "--matmul-precision", "bf16"], "invalid choice: 'bf16'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_command_lines_exit_2_with_one_line(capsys, argv, match):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and match in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "text,match",
    [
        ("epoch = 3\n", "unknown key 'epoch'; valid keys: epochs"),
        ('epochs = "ten"\n', "'epochs' must be int, got 'ten'"),
        ('optimizer = "sgd"\n', "optimizer must be one of lbfgs, adam"),
        ('matmul_precision = "fp16"\n', "matmul_precision must be one of ieee, tf32"),
        ("matmul_precision = 1\n", "'matmul_precision' must be str, got 1"),
        ("epochs = [\n", "not valid TOML"),
    ],
)
def test_bad_config_files(capsys, tmp_path, text, match):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    code, _, err = run(capsys, "solve", "poisson", "--config", str(cfg))
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1


def test_missing_config_file(capsys, tmp_path):
    code, _, err = run(capsys, "solve", "poisson", "--config", str(tmp_path / "none.toml"))
    assert code == 2 and "No such file" in err


def test_solve_writes_results(capsys, tmp_path, monkeypatch):
    original = problems.get

    def small(name):
        p = original(name)
        p.defaults = {**p.defaults, "n_interior": 32, "n_boundary": 16}
        p.width, p.depth = 6, 1
        return p

    monkeypatch.setattr(problems, "get", small)
    cfg = tmp_path / "c.toml"
    cfg.write_text("epochs = 2\nseed = 3\n[dual_options]\neta = 0.5\n")
    out = tmp_path / "run"
    code, stdout, _ = run(
        capsys,
        "solve",
        "poisson",
        "--config",
        str(cfg),
        "--out",
        str(out),
        "--no-progress",
        "--no-plots",
        "--epochs",
        "3",
        "--matmul-precision",
        "tf32",
    )
    assert code == 0 and "relative L2" in stdout
    res = json.load(open(out / "results.json"))
    assert res["matmul_precision"] == "tf32"
    assert res["epochs"] == 3 and res["seed"] == 3 and res["dual_options"]["eta"] == 0.5


def test_console_script_is_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "fluxkern")
    proc = subprocess.run([exe, "solve", "nope"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown problem" in proc.stderr
