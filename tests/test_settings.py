"""The process-wide settings: matmul precision (TF32 on CUDA) and the CUDA jet kernel.

Their effect on a GPU is tested in test_cuda.py; here: the API, its errors, that CPU results do
not change with either setting, and (through a test hook of the module) that the scope fluxkern
runs its TF32 GEMMs in turns torch's global cuBLAS flag on and restores it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import fluxkern
from fluxkern import _ext, solver

needs_ext = pytest.mark.skipif(not _ext.available(), reason="the extension is not built")


@pytest.fixture(autouse=True)
def _restore_settings():
    before = fluxkern.get_matmul_precision(), fluxkern.get_cuda_kernel()
    yield
    fluxkern.set_matmul_precision(before[0])
    fluxkern.set_cuda_kernel(before[1])


def test_exported_from_the_package():
    for name in (
        "set_matmul_precision",
        "get_matmul_precision",
        "matmul_precision",
        "set_cuda_kernel",
        "get_cuda_kernel",
        "cuda_kernel",
    ):
        assert name in fluxkern.__all__ and callable(getattr(fluxkern, name))


def test_defaults():
    assert fluxkern.get_matmul_precision() == "ieee"
    if os.environ.get("FLUXKERN_CUDA_TILE") != "1":
        assert fluxkern.get_cuda_kernel() == "gemm"


def test_matmul_precision_round_trip_and_context_manager():
    fluxkern.set_matmul_precision("tf32")
    assert fluxkern.get_matmul_precision() == "tf32"
    with fluxkern.matmul_precision("ieee"):
        assert fluxkern.get_matmul_precision() == "ieee"
    assert fluxkern.get_matmul_precision() == "tf32"
    fluxkern.set_matmul_precision("ieee")
    with pytest.raises(KeyError), fluxkern.matmul_precision("tf32"):
        assert fluxkern.get_matmul_precision() == "tf32"
        raise KeyError("inside")
    assert fluxkern.get_matmul_precision() == "ieee"


def test_cuda_kernel_round_trip_and_context_manager():
    fluxkern.set_cuda_kernel("tile")
    assert fluxkern.get_cuda_kernel() == "tile"
    with fluxkern.cuda_kernel("gemm"):
        assert fluxkern.get_cuda_kernel() == "gemm"
    assert fluxkern.get_cuda_kernel() == "tile"


@pytest.mark.parametrize("bad", ["TF32", "highest", "", None, 1])
def test_bad_matmul_precision_is_a_value_error(bad):
    with pytest.raises(ValueError, match="unknown matmul precision.*choose 'ieee' or 'tf32'"):
        fluxkern.set_matmul_precision(bad)
    with pytest.raises(ValueError, match="unknown matmul precision"):
        with fluxkern.matmul_precision(bad):
            pass
    assert fluxkern.get_matmul_precision() == "ieee"


@pytest.mark.parametrize("bad", ["cublas", "Tile", None])
def test_bad_cuda_kernel_is_a_value_error(bad):
    before = fluxkern.get_cuda_kernel()
    with pytest.raises(ValueError, match="unknown CUDA jet kernel.*choose 'gemm' or 'tile'"):
        fluxkern.set_cuda_kernel(bad)
    assert fluxkern.get_cuda_kernel() == before


@needs_ext
def test_the_module_refuses_a_bad_mode_itself():
    with pytest.raises(ValueError, match="unknown matmul precision 'bf16'"):
        _ext.module().set_cuda_matmul_precision("bf16")
    with pytest.raises(ValueError, match="unknown CUDA jet kernel 'x'"):
        _ext.module().set_cuda_jet_kernel("x")


def test_environment_variable_selects_the_tile_kernel():
    code = "import fluxkern; print(fluxkern.get_cuda_kernel())"
    for value, want in (("1", "tile"), ("0", "gemm")):
        env = {**os.environ, "FLUXKERN_CUDA_TILE": value}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == want


def _cpu_jet_and_grads(dtype):
    torch.manual_seed(0)
    net = fluxkern.MLP(2, 3, 33, 3, "tanh", dtype=dtype)
    x = torch.rand(257, 2, dtype=dtype, requires_grad=True)
    y, jac = fluxkern.jet(net, x)
    loss = (y**2).sum() + (jac**3).sum()
    return [y, jac, *torch.autograd.grad(loss, [*net.parameters(), x])]


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_results_are_bitwise_unchanged_with_tf32_and_tile(dtype):
    plain = _cpu_jet_and_grads(dtype)
    tf32_before = torch.backends.cuda.matmul.allow_tf32
    with fluxkern.matmul_precision("tf32"), fluxkern.cuda_kernel("tile"):
        changed = _cpu_jet_and_grads(dtype)
    for a, b in zip(plain, changed, strict=True):
        assert torch.equal(a, b)
    assert torch.backends.cuda.matmul.allow_tf32 == tf32_before


def _torch_tf32_state():
    m = torch.backends.cuda.matmul
    return m.allow_tf32, m.fp32_precision, torch.get_float32_matmul_precision()


@needs_ext
def test_tf32_scope_sets_torch_flag_and_restores_it():
    before = _torch_tf32_state()
    assert before[0] is False  # torch's default
    inside = _ext.module()._call_in_cublas_tf32_scope(_torch_tf32_state)
    assert inside == (True, "tf32", "high")
    assert _torch_tf32_state() == before


@needs_ext
def test_tf32_scope_restores_after_an_exception():
    before = _torch_tf32_state()

    def boom():
        assert torch.backends.cuda.matmul.allow_tf32
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _ext.module()._call_in_cublas_tf32_scope(boom)
    assert _torch_tf32_state() == before


@needs_ext
@pytest.mark.parametrize("api", ["legacy", "new"])
def test_tf32_scope_leaves_a_user_enabled_flag_on(api):
    m = torch.backends.cuda.matmul
    before = _torch_tf32_state()
    try:
        if api == "legacy":
            torch.set_float32_matmul_precision("high")
        else:
            torch.set_float32_matmul_precision("highest")
            m.fp32_precision = "tf32"
            torch.set_float32_matmul_precision("high")  # keep the legacy view consistent
        user = _torch_tf32_state()
        assert _ext.module()._call_in_cublas_tf32_scope(_torch_tf32_state) == user
        assert _torch_tf32_state() == user
    finally:
        torch.set_float32_matmul_precision("highest")
        m.fp32_precision = before[1]
    assert _torch_tf32_state() == before


def test_solve_option_is_validated():
    with pytest.raises(ValueError, match="matmul_precision must be one of ieee, tf32; got 'bf16'"):
        fluxkern.solve("poisson", epochs=0, matmul_precision="bf16", progress=False, plots=False)
    assert solver.SolveOptions().matmul_precision == "ieee"


def test_solve_sets_the_precision_for_the_run_only(monkeypatch):
    seen = []
    real_run = solver._run

    def spy(problem, opts, callback=None):
        seen.append(fluxkern.get_matmul_precision())
        return real_run(problem, opts, callback)

    monkeypatch.setattr(solver, "_run", spy)
    problem = fluxkern.problems.get("poisson")
    problem.defaults = {**problem.defaults, "n_interior": 16, "n_boundary": 8}
    problem.width, problem.depth = 4, 1
    res = fluxkern.solve(problem, epochs=1, matmul_precision="tf32", progress=False, plots=False)
    assert seen == ["tf32"] and res["matmul_precision"] == "tf32"
    assert fluxkern.get_matmul_precision() == "ieee"
