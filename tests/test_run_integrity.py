"""A run cannot be hijacked or silently wrong: checkpoints load no code, writes follow no planted
link, a resume continues only the same run, signals and failures end in one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from fluxkern import cli, problems
from fluxkern.runfiles import LOCK, OutputLock

EPOCHS = ["--epochs", "2", "--no-progress", "--no-plots"]


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def solve(capsys, out, *extra):
    return run(capsys, "solve", "poisson", "--out", str(out), *EPOCHS, *extra)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def done(small, capsys, tmp_path):
    """A finished two-epoch poisson run (small points), seed 1."""
    out = tmp_path / "run"
    code, _, err = solve(capsys, out, "--seed", "1")
    assert code == 0, err
    return out


def _edit_checkpoint(out, **fields):
    ck_path = out / "checkpoint.pt"
    ck = torch.load(ck_path, weights_only=True)
    ck.update(fields)
    torch.save(ck, ck_path)
    return ck_path


# ---------------------------------------------------------------------------------- security
class _Payload:
    """Unpickling it writes a file: what a crafted checkpoint could do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_crafted_pickle_is_refused_and_never_run(capsys, done, tmp_path):
    marker = tmp_path / "pwned"
    _edit_checkpoint(done, extra=_Payload(str(marker)))
    before = (done / "checkpoint.pt").read_bytes()
    code, _, err = solve(capsys, done, "--seed", "1", "--resume")
    assert code == 2
    line = one_line(err)
    assert "Python objects" in line and "never loaded" in line, line
    assert not marker.exists()
    assert (done / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("name", ["checkpoint.pt", "results.json", "model.pt", "history.json"])
@pytest.mark.parametrize("planted", ["tmp", "target"])
def test_a_planted_link_is_never_written_through(capsys, small, tmp_path, name, planted):
    out = tmp_path / "run"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = out / (f"{name}.tmp" if planted == "tmp" else name)
    link.symlink_to(victim)
    code, _, err = solve(capsys, out)
    assert code == 0, err
    assert victim.read_text() == "precious"
    assert not (out / name).is_symlink() and (out / name).stat().st_size > 0
    leftovers = [f for f in os.listdir(out) if f.endswith(".tmp") and f != link.name]
    assert leftovers == []


# ---------------------------------------------------------------------------------- resume
@pytest.mark.parametrize(
    "extra, match",
    [
        (["--seed", "0"], "resume: seed differs: the checkpoint's run has 1, this run 0"),
        (["--seed", "1", "--dtype", "float32"], "dtype differs: the checkpoint's run has "),
        (["--seed", "1", "--optimizer", "adam"], "optimizer differs: the checkpoint's run has "),
        (["--seed", "1", "--dual", "capu"], "dual differs"),
        (["--seed", "1", "--resample-every", "1"], "resample every differs"),
    ],
)
def test_resume_refuses_another_run(capsys, done, extra, match):
    before = (done / "checkpoint.pt").read_bytes()
    code, _, err = solve(capsys, done, "--resume", *extra)
    assert code == 2
    line = one_line(err)
    assert match in line, line
    assert "start anew without resume" in line
    assert (done / "checkpoint.pt").read_bytes() == before


def test_resume_refuses_another_point_count(capsys, done, monkeypatch):
    p = problems.get("poisson")
    p.defaults["n_interior"] = p.defaults["n_interior"] + 1
    monkeypatch.setattr(problems, "resolve", lambda name: p)
    code, _, err = solve(capsys, done, "--seed", "1", "--resume")
    assert code == 2 and "setup differs" in one_line(err)


def test_resume_applies_and_records_a_new_learning_rate(capsys, done, tmp_path):
    import json
    import shutil

    same = tmp_path / "same"
    shutil.copytree(done, same)
    argv = ["--seed", "1", "--resume", "--epochs", "4"]
    assert solve(capsys, same, *argv)[0] == 0
    assert solve(capsys, done, *argv, "--lr", "0.5")[0] == 0
    a = json.loads((same / "results.json").read_text())
    b = json.loads((done / "results.json").read_text())
    assert a["final_loss"] != b["final_loss"]  # the new rate took effect
    assert b["resumed"] == {
        "from_epoch": 2,
        "changed_options": {"lr": [None, 0.5], "epochs": [2, 4]},
    }
    assert a["resumed"]["changed_options"] == {"epochs": [2, 4]}
    ck = torch.load(done / "checkpoint.pt", weights_only=True)
    assert ck["options"]["lr"] == 0.5


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"epoch": -50}, "its epoch is -50, not a non-negative integer"),
        ({"epoch": 10.5}, "its epoch is 10.5, not a non-negative integer"),
        ({"epoch": True}, "its epoch is True"),
        ({"elapsed_s": "soon"}, "its elapsed_s is 'soon'"),
        ({"elapsed_s": float("nan")}, "its elapsed_s is nan"),
        ({"history": {"loss": [1.0]}}, "its history does not hold one record per epoch"),
        ({"rng": torch.zeros(3)}, "random generator state"),
        ({"model": {"w": 3}}, "its model is not a state dict of tensors"),
        ({"switched_at": 7}, "its switched_at is 7"),
        ({"identity": None}, "does not record its run's options"),
    ],
)
def test_damaged_checkpoint_fields_are_refused(capsys, done, fields, match):
    _edit_checkpoint(done, **fields)
    code, _, err = solve(capsys, done, "--seed", "1", "--resume", "--epochs", "20")
    assert code == 2
    line = one_line(err)
    assert match in line, line


def test_a_checkpoint_with_nan_weights_is_not_resumed(capsys, done):
    ck = torch.load(done / "checkpoint.pt", weights_only=True)
    first = next(iter(ck["model"]))
    ck["model"][first] = torch.full_like(ck["model"][first], float("nan"))
    torch.save(ck, done / "checkpoint.pt")
    code, _, err = solve(capsys, done, "--seed", "1", "--resume", "--epochs", "4")
    assert code == 2 and "NaN or infinite values (a diverged run)" in one_line(err)


# ---------------------------------------------------------------------------------- failures
def test_non_finite_loss_before_any_checkpoint_says_none_was_written(capsys, small, tmp_path):
    out = tmp_path / "inf"
    code, _, err = solve(capsys, out, "--lr", "1e200")  # diverges in the first epoch
    assert code == 3
    line = one_line(err)
    assert "no checkpoint was written yet" in line and "last good" not in line, line
    assert not (out / "checkpoint.pt").exists()


def test_non_finite_loss_names_the_checkpoint_that_exists(capsys, done):
    code, _, err = solve(capsys, done, "--seed", "1", "--resume", "--epochs", "5", "--lr", "1e200")
    assert code == 3
    line = one_line(err)
    assert f"the last good checkpoint (epoch 2) is {done / 'checkpoint.pt'}" in line, line


def test_the_first_checkpoint_on_a_full_disk_says_so(capsys, small, tmp_path, monkeypatch):
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(prefix="", suffix="", dir=None, **kw):
        if prefix == ".checkpoint.pt.":
            return os.open("/dev/full", os.O_WRONLY), os.path.join(dir, "full.tmp")
        return real(prefix=prefix, suffix=suffix, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    code, _, err = solve(capsys, tmp_path / "full")
    assert code == 2
    line = one_line(err)
    assert "No space left on device" in line and "enforce fail" not in line, line


def test_a_run_locks_its_output_folder(capsys, small, tmp_path):
    out = tmp_path / "locked"
    out.mkdir()
    with OutputLock(str(out)):
        code, _, err = solve(capsys, out)
        assert code == 2
        line = one_line(err)
        assert "another fluxkern run is writing in this output folder (pid " in line, line
        assert str(os.getpid()) in line
    assert not (out / "checkpoint.pt").exists()
    code, _, err = solve(capsys, out)  # free again
    assert code == 0, err
    assert not (out / LOCK).exists()


def test_a_stale_lock_file_does_not_block(capsys, small, tmp_path):
    out = tmp_path / "stale"
    out.mkdir()
    (out / LOCK).write_text("pid 1 on elsewhere, since long ago")  # its holder died
    code, _, err = solve(capsys, out)
    assert code == 0, err


# ---------------------------------------------------------------------------------- processes
def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WORLD_SIZE"}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


SLOW_PROBLEM = """
import time, torch
import fluxkern as fk
from fluxkern.geometry import Interval

def terms(pts):
    open({marker!r}, "w").close()
    time.sleep({sleep})
    x = fk.inputs("x")
    u = fk.outputs("u")
    return [
        fk.Objective("pde", u.d(x) - 1.0, pts["interior"]),
        fk.Constraint("bc", u, pts["left"]),
    ]

problem = fk.problem(
    "slow", "x", "u", terms, domain=Interval(0.0, 1.0),
    points={{"interior": fk.Sample("interior", 64), "left": torch.zeros(1, 1)}},
    width=8, depth=2, defaults={{"epochs": 100000, "checkpoint_every": 5}},
)
"""


def _slow_problem(tmp_path, sleep: float) -> tuple[str, str]:
    marker = str(tmp_path / "started")
    path = tmp_path / "slow.py"
    path.write_text(textwrap.dedent(SLOW_PROBLEM.format(marker=marker, sleep=sleep)))
    return str(path), marker


def _wait_for(path: str, proc: subprocess.Popen, seconds: float = 60.0) -> None:
    t0 = time.time()
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < seconds, "the run did not start"
        time.sleep(0.05)


def test_sigterm_ends_training_with_a_final_checkpoint(tmp_path):
    problem, marker = _slow_problem(tmp_path, 0.0)
    out = tmp_path / "term"
    cmd = [sys.executable, "-m", "fluxkern", "solve", problem, "--out", str(out), "--no-plots"]
    proc = subprocess.Popen(cmd + ["--no-progress"], env=_env(), stderr=subprocess.PIPE, text=True)
    _wait_for(str(out / "checkpoint.pt"), proc)  # training runs
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    line = one_line(err)
    assert line.startswith("fluxkern: terminated (SIGTERM) after epoch "), line
    epoch = int(line.split("after epoch ")[1].split(";")[0])
    assert f"the last checkpoint (epoch {epoch}) is {out / 'checkpoint.pt'}" in line
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == epoch >= 1


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    problem, marker = _slow_problem(tmp_path, 30.0)
    cmd = [sys.executable, "-m", "fluxkern", "solve", problem, "--out", str(tmp_path / "c")]
    # a child inherits an ignored SIGINT (a test run started in the background of a
    # non-interactive shell has one), and Python then never raises KeyboardInterrupt: give
    # the child the default handling a user's terminal gives it
    proc = subprocess.Popen(
        cmd,
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    _wait_for(marker, proc)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"no exit within 60 s of SIGINT; stderr: {err[-2000:]}") from None
    assert proc.returncode == 130, err
    assert one_line(err) == "fluxkern: interrupted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_rendezvous_without_the_other_ranks_times_out_in_one_line(tmp_path):
    env = _env(
        RANK="0",
        LOCAL_RANK="0",
        WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        FLUXKERN_DIST_TIMEOUT_S="3",
    )
    cmd = [sys.executable, "-m", "fluxkern", "solve", "poisson", "--epochs", "1"]
    cmd += ["--out", str(tmp_path / "d"), "--no-progress"]
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("fluxkern: rank 0 of 2 joining the other ranks at 127.0.0.1:")
    assert "the rendezvous of 2 ranks" in lines[-1] and "within 3 s" in lines[-1], lines
    assert len(lines) == 2 and time.time() - t0 < 60


def test_too_many_points_under_a_memory_limit_is_one_line(tmp_path):
    path = tmp_path / "huge.py"
    path.write_text(
        textwrap.dedent(
            """
            import fluxkern as fk
            from fluxkern.geometry import Interval
            x = fk.inputs("x")
            u = fk.outputs("u")
            problem = fk.problem(
                "huge", "x", "u",
                lambda p: [fk.Objective("pde", u.d(x) - 1.0, p["interior"])],
                domain=Interval(0.0, 1.0), points={"interior": fk.Sample("interior", 10**9)},
            )
            """
        )
    )
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30)); "
    code = limit + "import sys; from fluxkern.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", code, "solve", str(path), "--out", str(tmp_path / "h")]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert "out of memory" in line and "use fewer points" in line, line
