"""Tests of the residual Jacobian (issue 13): r [N, R] and jac = dr/dtheta [N, R, n_params].

The oracle is torch.func.jacrev of a function of the flat parameter vector that evaluates the
residuals with the reference jet (fluxkern.reference.residuals). The twin
(fluxkern.reference.residual_jacobian) is checked against it on every benchmark problem's fused
groups; the fused op against the twin. Tolerances from tests/matrix.py.
"""

from __future__ import annotations

import pytest
import torch

import fluxkern
import fluxkern.problems as problems
from fluxkern import ops, reference, solver
from fluxkern.program import ResidualProgram
from fluxkern.specs import MlpSpec
from matrix import TOL, rel_err

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


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the test machine's cores are shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
