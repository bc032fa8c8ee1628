"""The side-by-side benchmark harness (bench/): a smoke run, the loss check, the report.

Not a timing test: it checks that `python -m bench` runs end to end on tiny sizes, that every
contender of a form computes the same loss, that failures become rows instead of aborting the
run, and that the report reads what the run wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import fluxkern

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import accuracy  # noqa: E402
import poisson_case as case  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402
import torch_steps as ts  # noqa: E402


def test_smoke_run_writes_results_tables_and_plots(tmp_path):
    cmd = [sys.executable, "-m", "bench", "--quick", "--no-compile", "--n", "256"]
    cmd += ["--workloads", "jet", "step", "scaling", "--scaling-n", "128", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (js,) = list(tmp_path.glob("*.json"))
    payload = json.loads(js.read_text())
    assert payload["machine"]["torch"] == torch.__version__
    steps = {r["contender"]: r for r in payload["workloads"]["step"]["results"]}
    fused = steps["fluxkern [cpu, fused]"]
    assert fused["ms"] > 0 and fused["x fluxkern"] == 1.0
    assert steps["PyTorch autograd.grad"]["ms"] > 0
    deepxde = [r for r in payload["workloads"]["step"]["results"] if "DeepXDE" in r["contender"]]
    assert deepxde and (all(r["ms"] for r in deepxde) or deepxde[0]["error"])
    assert payload["workloads"]["scaling"]["results"][0]["N"] == 128
    stem = str(js)[: -len(".json")]
    for suffix in (".md", "-steps.png", "-scaling.png"):
        assert os.path.getsize(stem + suffix) > 0, suffix
    assert "fluxkern [cpu, fused]" in open(stem + ".md").read()


def test_contenders_of_one_form_agree_and_a_wrong_one_is_caught():
    pts = case.make_points(64, 16, torch.float64)
    cons = ts.flux_contenders(8, 2, pts, torch.float64, "cpu", compile_variants=False)
    values = run.check_losses(cons, torch.float64)
    assert len(values) >= 3
    bad = ts.Contender("wrong", "flux AL", lambda: cons[0].loss() * 1.001, [])
    with pytest.raises(SystemExit, match="wrong"):
        run.check_losses([*cons, bad], torch.float64)


def test_a_failing_contender_is_a_row_not_a_crash():
    def boom():
        raise RuntimeError("no double backward here\nmore text")

    c = ts.Contender("broken", "PINN", boom, [])
    assert c.first_loss() is None and c.error == "RuntimeError: no double backward here"
    rows = run.time_rows([c], "x", 1.0, 1.0, {"N": 1}, 0.01)
    assert rows[0]["ms"] is None and "double backward" in rows[0]["error"]


def test_trace_records_the_first_time_the_target_is_met():
    t = accuracy.Trace("c", "poisson", 1e-3)
    assert not t.record(1.0, 5e-3)
    assert t.record(2.0, 9e-4) and t.reached_s == 2.0
    t.record(3.0, 2e-3)
    assert t.reached_s == 2.0 and t.best() == 9e-4
    text = report.tables(
        {
            "machine": {
                "cpu": "x",
                "cores": 1,
                "torch_threads": 1,
                "python": "3",
                "torch": "t",
                "fluxkern": "f",
                "date": "d",
                "gemm_peak_gflops_float32": 1,
            },
            "workloads": {"tta": {"results": [t.as_dict()]}},
        }
    )
    assert "| poisson" in text and "2.0" in text


def test_a_crashing_compiled_contender_becomes_an_error_row(monkeypatch):
    import isolated

    def killed(cmd, **kw):
        return subprocess.CompletedProcess(cmd, -11, stdout="", stderr="")

    monkeypatch.setattr(isolated.subprocess, "run", killed)
    c = isolated.IsolatedContender("jet", "torch.compile(torch.func)", "jet", {})
    assert c.first_loss() is None and "SIGSEGV" in c.error
    with pytest.raises(RuntimeError, match="SIGSEGV"):
        c.time_step("cpu", 0.1)


def test_an_isolated_contender_reports_loss_and_time_from_its_process():
    import isolated

    spec = {"n": 64, "nb": 16, "width": 8, "depth": 2, "min_time": 0.01}
    c = isolated.IsolatedContender("step", "torch.compile(autograd.grad)", "PINN", spec)
    val = c.first_loss()
    # this torch cannot compile a double backward: then the reason is the row's error
    assert (val is not None and c.time_step("cpu", 0) > 0) or "backward" in c.error


def test_problems_workload_quick_run_writes_checked_rows(tmp_path):
    cmd = [sys.executable, "-m", "bench", "--workloads", "problems", "--quick"]
    cmd += ["--problems", "poisson", "--min-time", "0.05", "--epoch-reps", "1"]
    cmd += ["--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (js,) = list(tmp_path.glob("*.json"))
    rows = json.loads(js.read_text())["workloads"]["problems"]["results"]
    kinds = {r["kind"]: r for r in rows}
    assert set(kinds) == {"fused", "twin", "plain"}
    for r in rows:
        assert (r["problem"], r["dtype"], r["threads"]) == ("poisson", "float64", 1)
        assert r["eval_ms"] > 0 and r["epoch_ms"] > 0 and r["evals_per_epoch"] >= 1
        assert max(r["check"].values()) <= 1e-10  # the correctness check ran and passed
    fused = kinds["fused"]
    assert fused["x fused eval"] == 1.0 and fused["N_rows"] == 1024 + 256
    assert fused["gemm_same_shape_gflops"] > 0 and fused["gemm_peak_gflops"] > 0
    assert fused["unfused_blocks"] == []
    md = open(str(js)[: -len(".json")] + ".md").read()
    assert "problems: float64, 1 thread" in md and "| poisson" in md


def test_problems_check_catches_a_wrong_plain_loss():
    import problem_steps as ps

    case_ = ps.make_case("poisson", torch.float64)
    fused, plain = ps.FluxkernContender(case_, "cpu"), ps.PlainTorch(case_)
    start = fused.state()
    diffs = ps.check_contenders([fused, plain], start, torch.float64, "poisson")
    assert diffs[plain.name]["grad_rel"] <= 1e-10

    wrong = ps.PlainTorch(case_, name="wrong plain")
    wrong.loss = lambda: ps.PlainTorch.loss(wrong) * (1 + 1e-8)  # a loss off by 1e-8
    with pytest.raises(ps.CheckFailed, match="wrong plain disagrees.*loss"):
        ps.check_contenders([fused, wrong], start, torch.float64, "poisson")

    def same_value_wrong_gradient() -> torch.Tensor:
        loss = ps.PlainTorch.loss(wrong)
        return loss + 1e-6 * (loss - loss.detach())

    wrong.loss = same_value_wrong_gradient
    with pytest.raises(ps.CheckFailed, match="gradient"):
        ps.check_contenders([fused, wrong], start, torch.float64, "poisson")


def test_problems_device_option_is_for_the_problems_workload_only(capsys):
    with pytest.raises(SystemExit):
        run.parse(["--workloads", "jet", "problems", "--device", "cuda"])
    assert "--device cuda is for the problems workload only" in capsys.readouterr().err
    assert run.parse(["--workloads", "problems"]).device == "cpu"


@pytest.mark.skipif("cuda" in __import__("fluxkern").backends(), reason="a build with cuda")
def test_problems_on_cuda_without_cuda_kernels_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        run.parse(["--workloads", "problems", "--device", "cuda"])
    assert "built without its cuda kernels" in capsys.readouterr().err


@pytest.mark.skipif("cuda" not in __import__("fluxkern").backends(), reason="needs a GPU")
def test_problems_workload_on_cuda_writes_checked_rows(tmp_path):
    cmd = [sys.executable, "-m", "bench", "--workloads", "problems", "--quick", "--device"]
    cmd += ["cuda", "--problems", "poisson", "--min-time", "0.05", "--epoch-reps", "1"]
    cmd += ["--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (js,) = list(tmp_path.glob("gpu-*.json"))
    rows = json.loads(js.read_text())["workloads"]["problems"]["results"]
    assert {r["kind"] for r in rows} == {"fused", "twin", "plain"}
    for r in rows:
        assert r["device"] == "cuda" and r["epoch_ms"] > 0
        assert max(r["check"].values()) <= 1e-10
    md = open(str(js)[: -len(".json")] + ".md").read()
    assert "problems: float64, on cuda" in md and "GPU NVIDIA" in md


def test_dropin_case_checks_then_times_every_contender():
    import argparse

    import bench_dropin

    opts = argparse.Namespace(min_time=0.01, min_rounds=2)
    case_ = {"set": "large", "net": (2, 3, 8, 2), "N": 64}
    rows = bench_dropin.run_case(case_, "float64", 1, 10.0, opts)
    by = {r["contender"]: r for r in rows}
    assert set(by) == {"fluxkern.jet", "fluxkern.jet [gemm]", "autograd.grad", "torch.func"}
    assert by["fluxkern.jet"]["x vs fluxkern.jet"] == 1.0
    assert all(r["ms"] > 0 and r["rounds"] >= 2 for r in rows)
    assert "plain / fluxkern" in bench_dropin.summary(rows)


def test_dropin_check_catches_a_wrong_contender():
    import bench_dropin

    net = fluxkern.MLP(2, 3, 8, 2, dtype=torch.float64)
    x = torch.rand(16, 2, dtype=torch.float64)
    steps = bench_dropin.contenders(net, x)
    bench_dropin.check(steps, torch.float64)  # all agree
    good = steps["fluxkern.jet"]
    steps["wrong"] = lambda: (good()[0] * (1 + 1e-8), good()[1])
    with pytest.raises(SystemExit, match="wrong"):
        bench_dropin.check(steps, torch.float64)
