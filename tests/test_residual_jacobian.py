"""Tests of the residual Jacobian (issue 13): r [N, R] and jac = dr/dtheta [N, R, n_params].

The oracle is torch.func.jacrev of a function of the flat parameter vector that evaluates the
residuals with the reference jet (fluxkern.reference.residuals). The twin
(fluxkern.reference.residual_jacobian) is checked against it on every benchmark problem's fused
groups; the fused op against the twin. Tolerances from tests/matrix.py.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import shutil
import subprocess

import pytest
import torch

import fluxkern
import fluxkern.problems as problems
from fluxkern import ops, reference, solver
from fluxkern.program import ResidualProgram
from fluxkern.specs import MlpSpec
from matrix import DEVICES, DTYPES, TOL, rel_err

F64 = torch.float64
CPU = torch.device("cpu")
PROBLEMS = [
    "poisson",
    "helmholtz",
    "stokes",
    "composite_heat",
    "convection",
    "convection_diffusion",
    "cavity",
]
# few points per block: the oracle (jacrev) materialises per-point graphs
SMALL = {
    "n_interior": 24,
    "n_boundary": 8,
    "n_face": 6,
    "n_side": 8,
    "n_initial": 8,
    "n_pairs": 7,
}
HAVE_CPU_OP = "cpu" in fluxkern.backends() and hasattr(torch.ops.fluxkern, "residual_jacobian")
needs_op = pytest.mark.skipif(not HAVE_CPU_OP, reason="no compiled residual_jacobian op")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def flat_parameters(net: MlpSpec) -> torch.Tensor:
    """theta in the documented order: weights[0], biases[0], weights[1], ... (row-major)."""
    return torch.cat(
        [
            t.detach().reshape(-1)
            for w, b in zip(net.weights, net.biases, strict=True)
            for t in (w, b)
        ]
    )


def oracle(program, x, net: MlpSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """r and jacrev(r)(theta) through the reference jet (per-point graphs, torch.func)."""
    layout = ops.parameter_layout(net)

    def residuals_of(theta):
        ts = [
            theta[s.offset : s.offset + torch.Size(s.shape).numel()].view(s.shape) for s in layout
        ]
        spec = MlpSpec(net.shift, net.scale, ts[0::2], ts[1::2], net.activation)
        return reference.residuals(program, x, spec)

    theta = flat_parameters(net)
    return residuals_of(theta), torch.func.jacrev(residuals_of)(theta)


def problem_groups(name: str, dtype=F64, seed: int = 0):
    """(model, groups) of a benchmark problem as the solver builds it, with few points."""
    p = problems.get(name)
    p.defaults = {**p.defaults, **{k: v for k, v in SMALL.items() if k in p.defaults}}
    torch.manual_seed(seed)
    model = solver.build_model(p, "flux", dtype, CPU)
    # non-zero biases: zero-initialised ones would leave terms of the Jacobian untested
    with torch.no_grad():
        for layer in model.layers:
            layer.bias.uniform_(-0.5, 0.5)
    al = fluxkern.AugmentedLagrangian(
        model, p.flux_terms(seed, dtype, CPU), dual=p.defaults["dual"], **p.defaults["dual_options"]
    )
    assert al._groups and not al._torch_blocks  # every benchmark block is fused
    return model, al._groups


GROUPS = [(name, i) for name in PROBLEMS for i in range(2 if name == "convection" else 1)]


@pytest.mark.parametrize(("name", "index"), GROUPS)
def test_twin_matches_torch_func_on_benchmark_problems(name, index):
    model, groups = problem_groups(name)
    g = groups[index]
    net = model.spec()
    r, jac = reference.residual_jacobian(g.program, g.x, net)
    r0, jac0 = oracle(g.program, g.x, net)
    n_params = sum(p.numel() for p in model.parameters())
    assert jac.shape == (g.n, g.program.n_res, n_params)
    assert rel_err(r, r0) < TOL[F64]
    assert rel_err(jac, jac0) < TOL[F64]
    if name == "convection":  # group 1: the periodic pairs
        assert g.program.paired == (index == 1)


def test_segmented_rows_vanish_off_their_block():
    model, (g,) = problem_groups("poisson")
    assert g.program.segmented
    r, jac = reference.residual_jacobian(g.program, g.x, model.spec())
    for _, r0, r1, c0, c1 in g.program.slices:
        off = torch.ones(g.n, dtype=torch.bool)
        off[r0:r1] = False
        assert (jac[off][:, c0:c1] == 0).all() and (r[off][:, c0:c1] == 0).all()
        assert jac[r0:r1, c0:c1].abs().sum() > 0


def small_group(activation: str, n: int, paired: bool = False, dtype=F64, seed: int = 1):
    """A hand-made group: a 2-input, 3-output net; residuals reading y, J and products."""
    gen = torch.Generator().manual_seed(seed)
    model = fluxkern.MLP(2, 3, 6, 3, activation, [0.2, -0.1], [1.5, 0.7], dtype=dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype) * 0.7)
    rows = 2 * n if paired else n
    x = torch.rand(rows, 2, generator=gen, dtype=dtype)  # [P, 2]
    cols = torch.rand(rows, 2, generator=gen, dtype=dtype)  # [P, K]
    # residual, column, fields (m = 3, d = 2: y 0..2, J 3..8)
    table = torch.tensor(
        [
            [0, -1, 0, -1, -1],
            [0, 0, 3, 4, -1],
            [0, -1, 1, 1, 2],
            [1, 1, 8, -1, -1],
            [1, -1, -1, -1, -1],
            [2, 0, 2, 5, 6],
            [2, 1, 7, 7, -1],
        ],
        dtype=torch.int32,
    )
    coef = torch.tensor([1.0, -2.0, 0.5, 3.0, -0.25, 1.5, 0.75], dtype=dtype)
    ones = torch.ones(3, dtype=dtype)
    return model, x, ResidualProgram(table, coef, cols, ones, ones, 3, paired)


@pytest.mark.parametrize("activation", ["tanh", "sin", "silu"])
@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("n", [0, 1, 7])
def test_twin_matches_torch_func_on_small_groups(activation, paired, n):
    model, x, program = small_group(activation, n, paired)
    net = model.spec()
    r, jac = reference.residual_jacobian(program, x, net)
    assert r.shape == (n, 3) and jac.shape == (n, 3, sum(p.numel() for p in model.parameters()))
    if n == 0:
        return
    r0, jac0 = oracle(program, x, net)
    assert rel_err(r, r0) < TOL[F64]
    assert rel_err(jac, jac0) < TOL[F64]


def test_parameter_layout_is_parameters_to_vector_order():
    model, _, _ = small_group("tanh", 1)
    net = model.spec()
    layout = ops.parameter_layout(net)
    assert [s.name for s in layout][:2] == ["weights[0]", "biases[0]"]
    named = list(model.named_parameters())
    assert len(layout) == len(named)
    for s, (_, p) in zip(layout, named, strict=True):
        assert s.shape == tuple(p.shape)
    theta = torch.nn.utils.parameters_to_vector(model.parameters())
    assert torch.equal(theta, flat_parameters(net))
    for s, (_, p) in zip(layout, named, strict=True):
        assert torch.equal(theta[s.offset : s.offset + p.numel()], p.detach().reshape(-1))
    assert layout[-1].offset + torch.Size(layout[-1].shape).numel() == theta.numel()


def test_jacobian_matches_finite_differences_of_parameters_to_vector():
    """An independent check of the column order: perturb theta through vector_to_parameters."""
    model, x, program = small_group("tanh", 3)
    r, jac = ops.residual_jacobian(program, x, model.spec(), backend="torch")
    theta = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    h = 1e-6
    for k in (0, 5, theta.numel() // 2, theta.numel() - 1):
        th = theta.clone()
        th[k] += h
        torch.nn.utils.vector_to_parameters(th, model.parameters())
        with torch.no_grad():
            r_plus = reference.residuals(program, x, model.spec())
        torch.nn.utils.vector_to_parameters(theta, model.parameters())
        assert rel_err((r_plus - r) / h, jac[..., k]) < 1e-4


@pytest.mark.parametrize("backend", ["torch", *(["cpu"] if HAVE_CPU_OP else [])])
@pytest.mark.parametrize("paired", [False, True])
def test_chunks_give_the_same_result(backend, paired):
    model, x, program = small_group("sin", 7, paired)
    net = model.spec()
    r, jac = ops.residual_jacobian(program, x, net, backend=backend)
    for chunk in (1, 3, 7, 100):
        rc, jc = ops.residual_jacobian(program, x, net, backend=backend, chunk=chunk)
        # the fused op computes each point alone: bitwise equal; the twin's batched einsums
        # may round differently for another batch size
        if backend == "cpu":
            assert torch.equal(rc, r) and torch.equal(jc, jac)
        assert rel_err(rc, r) < TOL[F64] and rel_err(jc, jac) < TOL[F64]
    with pytest.raises(ValueError, match="chunk"):
        ops.residual_jacobian(program, x, net, chunk=0)


def test_not_differentiable():
    model, x, program = small_group("tanh", 4)
    r, jac = ops.residual_jacobian(program, x.requires_grad_(True), model.spec())
    assert not r.requires_grad and not jac.requires_grad


# ------------------------------------------------------------------------------ the fused CPU op


def op_args(program, x, net: MlpSpec) -> tuple:
    """The positional arguments of torch.ops.fluxkern.residual_jacobian."""
    return (
        x,
        net.shift,
        net.scale,
        list(net.weights),
        list(net.biases),
        net.activation,
        program.cols,
        program.table,
        program.coef,
        program.n_res,
        program.paired,
    )


@needs_op
@pytest.mark.parametrize(("name", "index"), GROUPS)
def test_op_matches_twin_on_benchmark_problems(name, index):
    model, groups = problem_groups(name)
    g = groups[index]
    net = model.spec()
    r, jac = ops.residual_jacobian(g.program, g.x, net, backend="cpu")
    r0, jac0 = reference.residual_jacobian(g.program, g.x, net)
    assert jac.shape == jac0.shape and r.shape == r0.shape
    assert rel_err(r, r0) < TOL[F64]
    assert rel_err(jac, jac0) < TOL[F64]
    # and directly against torch.func (issue 13's criterion), measured ~6e-16
    r1, jac1 = oracle(g.program, g.x, net)
    assert rel_err(r, r1) < TOL[F64]
    assert rel_err(jac, jac1) < TOL[F64]


@needs_op
@pytest.mark.parametrize("activation", ["tanh", "sin", "silu"])
@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("n", [0, 1, 7])
def test_op_matches_twin_on_small_groups(activation, paired, n):
    model, x, program = small_group(activation, n, paired)
    net = model.spec()
    r, jac = ops.residual_jacobian(program, x, net, backend="cpu")
    r0, jac0 = reference.residual_jacobian(program, x, net)
    assert r.shape == r0.shape == (n, 3) and jac.shape == jac0.shape
    if n:
        assert rel_err(r, r0) < TOL[F64]
        assert rel_err(jac, jac0) < TOL[F64]


@needs_op
@pytest.mark.parametrize("name", ["convection", "stokes"])
def test_op_float32_close_to_float64(name):
    """Float32 op against the float64 twin at the same parameters and points (TOL: matrix.py)."""
    model, groups = problem_groups(name)
    for g in groups:
        net = model.spec()
        r0, jac0 = reference.residual_jacobian(g.program, g.x, net)
        model32 = model.to(torch.float32)
        prog32 = dataclasses.replace(
            g.program, cols=g.program.cols.float(), coef=g.program.coef.float()
        )
        r, jac = ops.residual_jacobian(prog32, g.x.float(), model32.spec(), backend="cpu")
        model.to(F64)
        assert jac.dtype == torch.float32
        assert rel_err(r, r0) < TOL[torch.float32]
        assert rel_err(jac, jac0) < TOL[torch.float32]


@needs_op
@pytest.mark.parametrize("paired", [False, True])
def test_opcheck(paired):
    model, x, program = small_group("tanh", 5, paired)
    torch.library.opcheck(
        torch.ops.fluxkern.residual_jacobian.default, op_args(program, x, model.spec())
    )


@needs_op
def test_opcheck_benchmark_group():
    model, (g,) = problem_groups("poisson")
    torch.library.opcheck(
        torch.ops.fluxkern.residual_jacobian.default, op_args(g.program, g.x, model.spec())
    )


@needs_op
def test_op_segmented_rows_vanish_off_their_block():
    model, (g,) = problem_groups("stokes")
    assert g.program.segmented
    r, jac = ops.residual_jacobian(g.program, g.x, model.spec(), backend="cpu")
    for _, r0, r1, c0, c1 in g.program.slices:
        off = torch.ones(g.n, dtype=torch.bool)
        off[r0:r1] = False
        assert (jac[off][:, c0:c1] == 0).all() and (r[off][:, c0:c1] == 0).all()


@needs_op
def test_op_non_contiguous_inputs():
    model, x, program = small_group("silu", 7, paired=True)
    net = model.spec()
    r0, jac0 = ops.residual_jacobian(program, x, net, backend="cpu")
    xt = x.t().contiguous().t()  # same values, column-major
    cols_t = program.cols.t().contiguous().t()
    assert not xt.is_contiguous() and not cols_t.is_contiguous()
    w0 = net.weights[0].detach().t().contiguous().t()
    spec = MlpSpec(net.shift, net.scale, [w0, *net.weights[1:]], net.biases, net.activation)
    r, jac = ops.residual_jacobian(
        dataclasses.replace(program, cols=cols_t), xt, spec, backend="cpu"
    )
    assert torch.equal(r, r0) and torch.equal(jac, jac0)


def _bad(args: tuple, **changes) -> tuple:
    names = ["x", "shift", "scale", "weights", "biases", "activation", "cols", "table", "coef"]
    names += ["n_res", "paired"]
    out = list(args)
    for k, v in changes.items():
        out[names.index(k)] = v
    return tuple(out)


@needs_op
def test_bad_inputs_name_the_argument():
    model, x, program = small_group("tanh", 4)
    args = op_args(program, x, model.spec())
    op = torch.ops.fluxkern.residual_jacobian
    table = program.table
    bad_field = table.clone()
    bad_field[2, 3] = 9  # m + m d = 9 fields
    bad_res = table.clone()
    bad_res[0, 0] = 3
    bad_col = table.clone()
    bad_col[1, 1] = 2
    cases = [
        ({"cols": program.cols[:-1]}, "cols must be"),
        ({"table": table.long()}, "table must be int32"),
        ({"table": table[:, :4]}, r"table must be \[M, 5\]"),
        ({"coef": program.coef[:-1]}, "coef must be"),
        ({"coef": program.coef.float()}, "cols and coef must have the dtype of x"),
        ({"table": bad_field}, "table row 2 names field 9"),
        ({"table": bad_res}, "table row 0 names residual 3"),
        ({"table": bad_col}, "table row 1 names coefficient column 2"),
        ({"n_res": 0}, "n_res must be at least 1"),
        ({"activation": "relu"}, "relu"),
        ({"x": x[:, :1]}, "x"),
    ]
    for change, message in cases:
        with pytest.raises((ValueError, TypeError, RuntimeError), match=message):
            op(*_bad(args, **change))
    x_odd = torch.cat([x, x[:1]])
    paired = dataclasses.replace(program, paired=True, cols=torch.cat([program.cols] * 2)[:5])
    with pytest.raises(ValueError, match="even number of rows"):
        op(*op_args(paired, x_odd, model.spec()))


@needs_op
def test_default_backend_is_the_fused_op():
    model, x, program = small_group("tanh", 3)
    r, jac = ops.residual_jacobian(program, x, model.spec())
    r1, jac1 = ops.residual_jacobian(program, x, model.spec(), backend="cpu")
    assert torch.equal(jac, jac1) and torch.equal(r, r1)


@needs_op
def test_raw_op_outputs_do_not_require_grad():
    model, x, program = small_group("tanh", 3)
    args = op_args(program, x.requires_grad_(True), model.spec())  # weights require grad too
    r, jac = torch.ops.fluxkern.residual_jacobian(*args)
    assert not r.requires_grad and not jac.requires_grad


@pytest.mark.parametrize("backend", ["torch", *(["cpu"] if HAVE_CPU_OP else [])])
def test_chunk_iterator_accumulates_gauss_newton_matrix(backend):
    model, x, program = small_group("tanh", 7, paired=True)
    net = model.spec()
    r, jac = ops.residual_jacobian(program, x, net, backend=backend)
    flat = jac.reshape(-1, jac.shape[2])  # [N R, n_params]
    gram = torch.zeros(jac.shape[2], jac.shape[2], dtype=F64)
    grad = torch.zeros(jac.shape[2], dtype=F64)
    spans = []
    for n0, n1, r_c, jac_c in ops.residual_jacobian_chunks(program, x, net, backend, chunk=3):
        spans.append((n0, n1))
        jc = jac_c.reshape(-1, jac_c.shape[2])
        gram += jc.t() @ jc
        grad += jc.t() @ r_c.reshape(-1)
    assert spans == [(0, 3), (3, 6), (6, 7)]
    assert rel_err(gram, flat.t() @ flat) < TOL[F64]
    assert rel_err(grad, flat.t() @ r.reshape(-1)) < TOL[F64]
    model, x, program = small_group("tanh", 0, paired=True)
    empty = list(ops.residual_jacobian_chunks(program, x, model.spec(), backend))
    assert len(empty) == 1 and empty[0][3].shape == (0, 3, jac.shape[2])


# ------------------------------------------------- the CUDA kernel, emulated on the CPU (no GPU)

EMULATED_SOURCE = os.path.join(os.path.dirname(__file__), "cpp", "jacobian_emulated.cpp")
ACTIVATION_CODE = {"tanh": 0, "sin": 1, "silu": 2}  # fluxkern::Activation


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    """csrc/kernels/jacobian_cuda_kernel.cuh built by g++ through kernels/cuda_emulation.h."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is needed to build the emulated CUDA kernel")
    out = str(tmp_path_factory.mktemp("jac") / "jacobian_emulated.so")
    csrc = os.path.join(os.path.dirname(__file__), "..", "csrc")
    cmd = ["g++", "-std=c++20", "-O1", "-fopenmp-simd", "-pthread", "-shared", "-fPIC", "-Wall"]
    cmd += ["-Wextra", "-Werror", "-I", csrc, EMULATED_SOURCE, "-o", out]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return ctypes.CDLL(out)


def run_emulated(lib, program, x, net: MlpSpec, threads: int):
    """r, jac from the emulated CUDA kernel with `threads` threads (grid-stride over points)."""
    n = x.shape[0] // 2 if program.paired else x.shape[0]
    n_params = sum(w.numel() + b.numel() for w, b in zip(net.weights, net.biases, strict=True))
    r = x.new_full((n, program.n_res), float("nan"))
    jac = x.new_full((n, program.n_res, n_params), float("nan"))
    keep = [t.contiguous() for t in (x, net.shift, net.scale, program.cols, program.coef)]
    ws = [w.detach().contiguous() for w in net.weights]
    bs = [b.detach().contiguous() for b in net.biases]
    table = program.table.contiguous()
    widths = (ctypes.c_int64 * (len(ws) - 1))(*[w.shape[0] for w in ws[:-1]])
    wp = (ctypes.c_void_p * len(ws))(*[w.data_ptr() for w in ws])
    bp = (ctypes.c_void_p * len(bs))(*[b.data_ptr() for b in bs])
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    rc = lib.fk_jacobian_emulated(
        ctypes.c_int(1 if x.dtype == F64 else 0),
        ctypes.c_int(ACTIVATION_CODE[net.activation]),
        i64(n),
        i64(x.shape[1]),
        i64(ws[-1].shape[0]),
        i64(len(ws) - 1),
        widths,
        *[ptr(t.data_ptr()) for t in keep[:3]],
        wp,
        bp,
        ptr(keep[3].data_ptr()),
        i64(program.cols.shape[1]),
        ptr(table.data_ptr()),
        ptr(keep[4].data_ptr()),
        i64(table.shape[0]),
        i64(program.n_res),
        ctypes.c_int(int(program.paired)),
        i64(threads),
        ptr(r.data_ptr()),
        ptr(jac.data_ptr()),
    )
    assert rc == 0
    return r, jac


@pytest.mark.parametrize("activation", ["tanh", "sin", "silu"])
@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize(("n", "threads"), [(1, 1), (7, 3), (7, 7), (130, 130)])
def test_emulated_cuda_kernel_matches_twin(emulated, activation, paired, n, threads):
    model, x, program = small_group(activation, n, paired)
    net = model.spec()
    r, jac = run_emulated(emulated, program, x, net, threads)
    r0, jac0 = reference.residual_jacobian(program, x, net)
    assert rel_err(r, r0) < TOL[F64]
    assert rel_err(jac, jac0) < TOL[F64]


@pytest.mark.parametrize(("name", "index"), [("stokes", 0), ("convection", 1), ("cavity", 0)])
def test_emulated_cuda_kernel_on_benchmark_groups(emulated, name, index):
    model, groups = problem_groups(name)
    g = groups[index]
    net = model.spec()
    r, jac = run_emulated(emulated, g.program, g.x, net, threads=5)
    r0, jac0 = reference.residual_jacobian(g.program, g.x, net)
    assert rel_err(r, r0) < TOL[F64]
    assert rel_err(jac, jac0) < TOL[F64]


@pytest.mark.skipif("cuda" not in DEVICES, reason="no CUDA kernels or no GPU")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "index"), GROUPS)
def test_cuda_op_matches_twin(name, index, dtype):
    """The CUDA kernel (backend="cuda", never the default) against the float64 twin on the CPU."""
    model, groups = problem_groups(name)
    g = groups[index]
    r0, jac0 = reference.residual_jacobian(g.program, g.x, model.spec())
    cuda = torch.device("cuda")
    model = model.to(cuda, dtype)
    program = dataclasses.replace(
        g.program,
        cols=g.program.cols.to(cuda, dtype),
        coef=g.program.coef.to(cuda, dtype),
        table=g.program.table.to(cuda),
    )
    x = g.x.to(cuda, dtype)
    r, jac = ops.residual_jacobian(program, x, model.spec(), backend="cuda")
    assert jac.device.type == "cuda" and jac.dtype == dtype
    assert rel_err(r, r0) < TOL[dtype]
    assert rel_err(jac, jac0) < TOL[dtype]
    torch.library.opcheck(
        torch.ops.fluxkern.residual_jacobian.default, op_args(program, x, model.spec())
    )
    # the default on a GPU is the twin
    r_t, jac_t = ops.residual_jacobian(program, x, model.spec())
    assert rel_err(jac_t, jac0) < TOL[dtype]
