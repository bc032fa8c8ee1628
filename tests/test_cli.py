"""The fluxkern command: list, solve, and its one-line errors with exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import pytest
import torch

from fluxkern import cli, config_file, problems, solver

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def _permissions_bind() -> bool:
    """Whether this user is refused a file without read permission (root usually is not)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "f")
        open(path, "w").close()
        os.chmod(path, 0)
        try:
            open(path).close()
        except PermissionError:
            return True
        return False


PERMISSIONS_IGNORED = not _permissions_bind()  # permission bits do not bind: skip the chmod cases


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
        (["solve", "poisson", "--resample-every", "0"], "resample_every must be None or a"),
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


def test_solve_writes_results(capsys, tmp_path, small):
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


# --- solve --help and --print-config -------------------------------------------------------


def solve_parser() -> argparse.ArgumentParser:
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["solve"]


def test_every_solve_option_names_its_default(capsys):
    options = [a for a in solve_parser()._actions if a.option_strings and a.dest != "help"]
    assert len(options) == 31  # 25, then --resample-method, --resample-final, --no-resample-auto,
    # --output-scale, --continuation, --no-continuation
    for action in options:
        assert action.help and "default" in action.help, action.option_strings
    with pytest.raises(SystemExit) as exit_:
        cli.main(["solve", "--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "--print-config" in text and text.count("(default:") == len(options)


def test_help_defaults_are_those_of_the_solver_and_problems():
    defaults = solver.SolveOptions()
    set_by_problems = set.intersection(*(set(problems.get(n).defaults) for n in problems.names()))
    assert set_by_problems & set(solver.option_names()) == {
        "epochs",
        "optimizer",
        "dtype",
        "dual",
        "dual_options",
    }  # the ones the epilog names
    for action in solve_parser()._actions:
        value = getattr(defaults, action.dest, None)
        if (
            action.dest not in solver.option_names()
            or value in (None, {})
            or isinstance(value, bool)
        ):
            continue
        if action.dest in set_by_problems:
            assert f"default: from the problem; {value} if it sets none" in action.help
        else:
            assert f"default: {value})" in action.help, action.dest


def test_print_config_round_trips_through_config(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("seed = 3\ncheckpoint_every = 7\n[dual_options]\neta = 0.5\nbeta = 0.8\n")
    given = ["--config", str(cfg), "--epochs", "5", "--lr", "0.25", "--optimizer", "adam"]
    argv = ["solve", "poisson", *given, "--no-plots", "--out", str(tmp_path / "run")]
    code, out, err = run(capsys, *argv, "--print-config")
    assert code == 0 and err == ""
    printed = tomllib.loads(out)
    assert printed["epochs"] == 5 and printed["seed"] == 3 and printed["lr"] == 0.25
    assert printed["dtype"] == "float64" and printed["plots"] is False
    assert printed["dual_options"] == {"eta": 0.5, "beta": 0.8}
    assert "out" not in printed and "resume" not in printed
    assert "epochs = 5  # command line" in out and f"seed = 3  # config {cfg}" in out
    assert not (tmp_path / "run").exists()  # nothing solved, nothing written
    back = tmp_path / "back.toml"
    back.write_text(out)
    code, again, _ = run(capsys, "solve", "poisson", "--config", str(back), "--print-config")
    assert code == 0 and tomllib.loads(again) == printed
    wanted = {"seed": 3, "checkpoint_every": 7, "dual_options": {"eta": 0.5, "beta": 0.8}}
    wanted.update(epochs=5, lr=0.25, optimizer="adam", plots=False)
    effective = solver.effective_options("poisson", **wanted)
    assert solver.effective_options("poisson", **printed) == effective


def test_resample_options_reach_the_run(capsys):
    argv = ["solve", "poisson", "--resample-every", "25", "--resample-keep-optimizer"]
    code, out, _ = run(capsys, *argv, "--print-config")
    printed = tomllib.loads(out)
    assert code == 0 and printed["resample_every"] == 25
    assert printed["resample_keep_optimizer"] is True
    code, out, _ = run(capsys, "solve", "poisson", "--print-config")
    assert "resample_every" not in tomllib.loads(out)  # None: one draw
    assert tomllib.loads(out)["resample_keep_optimizer"] is False


def test_print_config_of_the_defaults_round_trips(capsys, tmp_path):
    code, out, _ = run(capsys, "solve", "poisson", "--print-config")
    assert code == 0 and "# lr: not set" in out and "# backend: not set" in out
    assert "epochs = 300  # problem" in out and 'device = "cpu"  # default' in out
    printed = tomllib.loads(out)
    assert "lr" not in printed and "backend" not in printed
    assert solver.effective_options("poisson", **printed) == solver.effective_options("poisson")
    back = tmp_path / "back.toml"
    back.write_text(out)
    code, again, _ = run(capsys, "solve", "poisson", "--config", str(back), "--print-config")
    assert code == 0 and tomllib.loads(again) == printed


def test_print_config_rejects_what_solve_would(capsys):
    code, out, err = run(capsys, "solve", "poisson", "--dual", "pecann", "--print-config")
    assert code == 2 and out == "" and "dual_options: dual rule 'pecann'" in err


def test_print_config_writes_arrays_and_refuses_a_value_toml_cannot_hold(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('optimizer = "adam"\n[optimizer_options]\nbetas = [0.9, 0.99]\n')
    code, out, _ = run(capsys, "solve", "poisson", "--config", str(cfg), "--print-config")
    assert code == 0 and tomllib.loads(out)["optimizer_options"]["betas"] == [0.9, 0.99]
    with pytest.raises(config_file.ConfigError, match="cannot write"):
        config_file._toml_value({"a": 1})  # a nested table: no option takes one


# --- files: one line naming the file, exit code 2, nothing written before is lost ----------


def solve(capsys, out, *extra):
    argv = ["solve", "poisson", "--out", str(out), "--no-progress", "--no-plots"]
    return run(capsys, *argv, "--epochs", "1", *extra)


def assert_file_error(code, err, path, match):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"fluxkern: error: {path}: "), lines[0]
    assert match in lines[0], lines[0]


def snapshot(folder):
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}


@pytest.fixture
def full_disk(monkeypatch):
    """full_disk(name): every later write of a file called `name` fails as on a full disk (its
    temporary file is /dev/full). A planted NAME.tmp folder no longer makes a write fail:
    writes go to new, randomly named temporary files (test_run_integrity.py)."""
    real = tempfile.mkstemp

    def fail_writes_of(name):
        def mkstemp(prefix="", suffix="", dir=None, **kw):
            if prefix == f".{name}.":
                path = os.path.join(dir, f"{prefix}dev-full{suffix}")
                return os.open("/dev/full", os.O_WRONLY), path
            return real(prefix=prefix, suffix=suffix, dir=dir, **kw)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)

    return fail_writes_of


@pytest.fixture
def run_dir(small, capsys, tmp_path):
    """A finished 1-epoch run: checkpoint.pt, model.pt, results.json, ..."""
    out = tmp_path / "run"
    code, _, err = solve(capsys, out)
    assert code == 0, err
    return out


def _truncate(ck):
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2])


def _foreign(ck):
    torch.save({"weights": torch.zeros(3)}, ck)


def _misfit(ck):
    state = torch.load(ck, weights_only=False)
    first = next(iter(state["model"]))
    state["model"][first] = torch.zeros(1, dtype=torch.float64)
    torch.save(state, ck)


def _as_folder(ck):
    ck.unlink()
    ck.mkdir()


@pytest.mark.parametrize(
    "damage,extra,match",
    [
        (_truncate, [], "resume: not a readable checkpoint (PytorchStreamReader failed"),
        (lambda ck: ck.write_bytes(b""), [], "resume: not a readable checkpoint"),
        (lambda ck: ck.write_text("epoch = 1\n"), [], "resume: not a readable checkpoint"),
        (_as_folder, [], "resume: not a readable checkpoint (Is a directory)"),
        (lambda ck: ck.unlink(), [], "resume: no checkpoint here"),
        (_foreign, [], "resume: not a fluxkern checkpoint"),
        (_misfit, [], "resume: the checkpoint does not fit this run (Error(s) in loading"),
        (None, ["--formulation", "pinn"], "is of a poisson/flux run, not poisson/pinn"),
        (None, ["--epochs", "0"], "the checkpoint is at epoch 1, past epochs=0"),
    ],
)
def test_failing_resume_changes_no_file(capsys, run_dir, damage, extra, match):
    ck = run_dir / "checkpoint.pt"
    if damage is not None:
        damage(ck)
    before = snapshot(run_dir)
    code, _, err = solve(capsys, run_dir, "--epochs", "2", "--resume", *extra)
    assert_file_error(code, err, ck, match)
    assert snapshot(run_dir) == before


@pytest.mark.skipif(PERMISSIONS_IGNORED, reason="permission bits do not bind this user (root)")
def test_resume_from_an_unreadable_checkpoint(capsys, run_dir):
    ck = run_dir / "checkpoint.pt"
    ck.chmod(0)
    code, _, err = solve(capsys, run_dir, "--epochs", "2", "--resume")
    assert_file_error(code, err, ck, "not a readable checkpoint (Permission denied)")


def test_failing_checkpoint_keeps_the_previous_one(capsys, run_dir, tmp_path, full_disk):
    full_disk("checkpoint.pt")
    cfg = tmp_path / "every.toml"
    cfg.write_text("checkpoint_every = 1\n")
    before = snapshot(run_dir)
    argv = ["--epochs", "3", "--resume", "--config", str(cfg)]
    code, _, err = solve(capsys, run_dir, *argv)
    assert_file_error(
        code, err, run_dir / "checkpoint.pt", "cannot write it (No space left on device)"
    )
    assert snapshot(run_dir) == before
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["epoch"] == 1


@pytest.mark.parametrize("name", ["results.json", "prediction.npz", "history.json"])
def test_failing_results_keep_the_trained_state(capsys, run_dir, name, full_disk):
    full_disk(name)
    old = (run_dir / name).read_bytes()
    code, _, err = solve(capsys, run_dir, "--epochs", "2", "--resume")
    assert_file_error(code, err, run_dir / name, "the trained state is kept in")
    assert (run_dir / name).read_bytes() == old
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["epoch"] == 2
    assert torch.load(run_dir / "model.pt", weights_only=False)["options"]["epochs"] == 2


def test_failing_model_keeps_the_checkpoint(capsys, run_dir, full_disk):
    full_disk("model.pt")
    code, _, err = solve(capsys, run_dir, "--epochs", "2", "--resume")
    assert_file_error(code, err, run_dir / "model.pt", "the trained state is in")
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["epoch"] == 2


def test_failing_plot_keeps_the_trained_state(capsys, small, tmp_path, full_disk):
    out = tmp_path / "plots"
    out.mkdir()
    full_disk("error.png")
    argv = ["--out", str(out), "--epochs", "1", "--no-progress"]
    code, _, err = run(capsys, "solve", "poisson", *argv)
    assert_file_error(
        code, err, out / "error.png", "cannot write the plot (No space left on device)"
    )
    assert (out / "solution.png").stat().st_size > 1000 and (out / "results.json").exists()
    assert torch.load(out / "model.pt", weights_only=False)["problem"] == "poisson"


def test_out_naming_a_file(capsys, small, tmp_path):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    code, _, err = solve(capsys, out)
    assert_file_error(code, err, out, "the output folder is an existing file")
    assert out.read_text() == "keep me"


def test_out_below_a_file(capsys, small, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    out = tmp_path / "notes.txt" / "run"
    code, _, err = solve(capsys, out)
    assert_file_error(code, err, out, "cannot write in the output folder (Not a directory)")


@pytest.mark.skipif(
    PERMISSIONS_IGNORED,
    reason="permission bits do not bind this user (root); see test_out_below_a_file",
)
def test_out_not_writable(capsys, small, tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        code, _, err = solve(capsys, out)
    finally:
        out.chmod(0o700)
    assert_file_error(code, err, out, "cannot write in the output folder (Permission denied)")


def _unreadable(path):
    path.write_text("epochs = 1\n")
    path.chmod(0)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: None, "cannot read the config (No such file or directory)"),
        (lambda p: p.mkdir(), "cannot read the config (Is a directory)"),
        (lambda p: p.write_bytes(b"epochs = \xff\n"), "config: not valid TOML (not UTF-8"),
        (lambda p: p.write_text("epochs = [\n"), "config: not valid TOML"),
        pytest.param(
            _unreadable,
            "cannot read the config (Permission denied)",
            marks=pytest.mark.skipif(
                PERMISSIONS_IGNORED, reason="permission bits do not bind this user (root)"
            ),
        ),
    ],
)
def test_config_file_errors(capsys, tmp_path, make, match):
    cfg = tmp_path / "c.toml"
    make(cfg)
    code, _, err = run(capsys, "solve", "poisson", "--config", str(cfg))
    assert_file_error(code, err, cfg, match)


def test_options_reference_lists_the_config_keys():
    page = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "options.md")
    rows = [ln for ln in open(page, encoding="utf-8") if ln.startswith("| `")]
    listed = {ln.split("`")[1].strip("[]") for ln in rows}
    assert listed == set(solver.option_names()) - {"out", "resume"}
