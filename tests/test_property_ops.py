"""Property tests of the fused CPU ops against their pure-torch twin (hypothesis, issue 26).

Over the ops' arguments: point counts (0, 1, odd sizes), inputs, outputs, widths, depths,
activations, float32 / float64, contiguous, strided and transposed points, points that require
grad; for the loss, random polynomial residuals of field degree <= 3 with input and data
coefficients, both forms, pointwise and global multipliers, both reductions, segmented groups of
two blocks and paired blocks, with and without grad mode.

Oracles and tolerances (tests/matrix.py): in float64 the fused op against the twin in float64,
TOL[float64] relative. In float32 both the fused op and the twin are compared with the twin in
float64; the fused op's error must be within TOL[float32], or within 10 times the twin's own
float32 error where the case is ill-conditioned (a residual or a loss that cancels loses digits
in any float32 evaluation, fused or not; a wrong formula is off by far more than either).

Examples are derandomized (the same cases in every run and on CI) and few (the whole file runs in
about 20 s on the 2-core dev VM).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fluxkern
from fluxkern import ops, reference
from fluxkern.blocks import Constraint, Objective
from fluxkern.nn import MlpSpec
from fluxkern.program import ResidualProgram, compile_group
from matrix import TOL, rel_err

pytestmark = [
    pytest.mark.skipif("cpu" not in fluxkern.backends(), reason="no fused CPU backend"),
    pytest.mark.usefixtures("one_thread"),  # tests/conftest.py
]

F32, F64 = torch.float32, torch.float64
CPU = torch.device("cpu")
ACTS = ("tanh", "sin", "silu")
SIZES = st.sampled_from([0, 1, 2, 3, 7, 13, 33]) | st.integers(0, 70)
LAYOUTS = ("contiguous", "strided", "transposed")

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ----------------------------------------------------------------------------- helpers


def make_spec(d: int, m: int, width: int, depth: int, act: str, seed: int) -> MlpSpec:
    """A float64 MLP with non-zero biases and a non-trivial input standardisation."""
    g = torch.Generator().manual_seed(seed)
    sizes = [d] + [width] * depth + [m]
    weights = [
        torch.randn(o, i, generator=g, dtype=F64) / i**0.5
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    biases = [0.3 * torch.randn(o, generator=g, dtype=F64) for o in sizes[1:]]
    shift = torch.rand(d, generator=g, dtype=F64) - 0.5
    scale = 0.5 + torch.rand(d, generator=g, dtype=F64)
    return MlpSpec(shift, scale, weights, biases, act)


def cast_spec(s: MlpSpec, dtype: torch.dtype, grad: bool = True) -> MlpSpec:
    """A copy of s in dtype whose weights and biases are leaves that require grad."""

    def leaf(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(dtype).clone().requires_grad_(grad)

    return MlpSpec(
        s.shift.to(dtype),
        s.scale.to(dtype),
        [leaf(w) for w in s.weights],
        [leaf(b) for b in s.biases],
        s.activation,
    )


def laid_out(x: torch.Tensor, layout: str) -> torch.Tensor:
    """x [N, d] with the same values, contiguous, strided (every other column of a wider
    tensor) or transposed (a [d, N] tensor's transpose)."""
    if layout == "strided":
        wide = torch.zeros(x.shape[0], 2 * x.shape[1], dtype=x.dtype)
        wide[:, ::2] = x
        return wide[:, ::2]
    if layout == "transposed":
        return x.t().contiguous().t()
    return x.contiguous()


def within(got, want64, twin, dtype, floor: float = 0.0) -> bool:
    """got is within TOL[dtype] of the float64 oracle, or within `floor` of it (an absolute
    error at the scale of the terms that cancel, see scales()), or (float32) within 10 times the
    error of the twin's own evaluation in the same dtype (see the module doc)."""
    err = rel_err(got, want64)
    if err <= TOL[dtype] or float((got.double() - want64).norm()) <= floor:
        return True
    return twin is not None and dtype == F32 and err <= 10 * rel_err(twin, want64)


# ----------------------------------------------------------------------------- the jet


@st.composite
def jet_cases(draw):
    return {
        "n": draw(SIZES),
        "d": draw(st.integers(1, 4)),
        "m": draw(st.integers(1, 4)),
        "width": draw(st.integers(1, 40)),
        "depth": draw(st.integers(1, 4)),
        "act": draw(st.sampled_from(ACTS)),
        "dtype": draw(st.sampled_from([F32, F64])),
        "layout": draw(st.sampled_from(LAYOUTS)),
        "x_grad": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def _jet_and_grads(x, spec, backend, gy, gj, x_grad):
    x = x.detach().clone().requires_grad_(True) if x_grad else x
    y, jac = ops.mlp_jet(x, spec, backend=backend)
    wrt = [*spec.weights, *spec.biases] + ([x] if x_grad else [])
    loss = (y * gy.to(y.dtype)).sum() + (jac * gj.to(y.dtype)).sum()
    return y, jac, torch.autograd.grad(loss, wrt, allow_unused=True)


@SETTINGS
@given(jet_cases())
def test_jet_matches_the_torch_twin(case):
    n, d, m, dtype = case["n"], case["d"], case["m"], case["dtype"]
    spec64 = make_spec(d, m, case["width"], case["depth"], case["act"], case["seed"])
    g = torch.Generator().manual_seed(case["seed"] + 1)
    x64 = 1.5 * torch.randn(n, d, generator=g, dtype=F64)
    gy = torch.randn(n, m, generator=g, dtype=F64)
    gj = torch.randn(n, m, d, generator=g, dtype=F64)
    x = laid_out(x64.to(dtype), case["layout"])
    assert torch.equal(x, x64.to(dtype))

    want = _jet_and_grads(x64, cast_spec(spec64, F64), "torch", gy, gj, case["x_grad"])
    got = _jet_and_grads(x, cast_spec(spec64, dtype), "cpu", gy, gj, case["x_grad"])
    twin = _jet_and_grads(x, cast_spec(spec64, dtype), "torch", gy, gj, case["x_grad"])
    assert got[0].shape == (n, m) and got[1].shape == (n, m, d)
    assert got[0].dtype == dtype and got[1].dtype == dtype
    for a, b, t in zip(got[:2], want[:2], twin[:2], strict=True):
        assert within(a, b, t, dtype), (rel_err(a, b), case)
    for k, (a, b, t) in enumerate(zip(got[2], want[2], twin[2], strict=True)):
        a = torch.zeros_like(b) if a is None else a
        assert within(a, b, t, dtype), (k, rel_err(a, b), case)


# ----------------------------------------------------------------------------- the fused loss


@st.composite
def monomials(draw, d: int, m: int):
    """(coefficient, field factors, coefficient factor) of one monomial, field degree <= 3."""
    field = st.tuples(st.just("y"), st.integers(0, m - 1)) | st.tuples(
        st.just("J"), st.integers(0, m - 1), st.integers(0, d - 1)
    )
    coef = draw(st.sampled_from([-1.0, 1.0])) * draw(st.floats(0.05, 2.0))
    fields = draw(st.lists(field, min_size=0, max_size=3))
    cfac = draw(st.sampled_from([None, "data"]) | st.tuples(st.just("x"), st.integers(0, d - 1)))
    return coef, fields, cfac


def build_expr(mono_list, xs, us, f):
    e = 0.0
    for coef, fields, cfac in mono_list:
        term = coef
        for fac in fields:
            term = term * (us[fac[1]] if fac[0] == "y" else us[fac[1]].d(xs[fac[2]]))
        if cfac == "data":
            term = term * f
        elif cfac is not None:
            term = term * xs[cfac[1]]
        e = e + term
    if isinstance(e, float):  # constants only: still an expression
        e = e + 0.0 * us[0]
    return e


@st.composite
def loss_cases(draw):
    d, m = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    paired = draw(st.booleans())
    n_blocks = 1 if paired else draw(st.integers(1, 2))
    blocks = []
    for _ in range(n_blocks):
        n_res = draw(st.integers(1, 3))
        blocks.append(
            {
                "n": draw(SIZES),
                "exprs": [
                    draw(st.lists(monomials(d, m), min_size=1, max_size=3)) for _ in range(n_res)
                ],
                "kind": draw(st.sampled_from(["objective", "constraint"])),
                "form": draw(st.sampled_from(["squared", "signed"])),
                "reduction": draw(st.sampled_from(["mean", "sum"])),
            }
        )
    return {
        "d": d,
        "m": m,
        "paired": paired,
        "blocks": blocks,
        "global": draw(st.booleans()),
        "width": draw(st.integers(1, 24)),
        "depth": draw(st.integers(1, 3)),
        "act": draw(st.sampled_from(ACTS)),
        "dtype": draw(st.sampled_from([F32, F64])),
        "layout": draw(st.sampled_from(LAYOUTS)),
        "grad_mode": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def build_program(case, dtype):
    """The case's blocks bound and compiled into one fused group: (x [P, d], program)."""
    d, m = case["d"], case["m"]
    names = " ".join(f"x{j}" for j in range(d)) + ","
    xs = fluxkern.inputs(names)
    us = fluxkern.outputs(" ".join(f"u{o}" for o in range(m)) + ",")
    f = fluxkern.data("f")
    g = torch.Generator().manual_seed(case["seed"] + 2)
    bound = []
    for k, b in enumerate(case["blocks"]):
        exprs = [build_expr(ms, xs, us, f) for ms in b["exprs"]]
        n = b["n"]
        if case["paired"]:
            pts = tuple(
                laid_out(torch.rand(n, d, generator=g, dtype=F64), case["layout"]) for _ in range(2)
            )
        else:
            pts = laid_out(2 * torch.rand(n, d, generator=g, dtype=F64) - 1, case["layout"])
        data = {"f": torch.randn(n, generator=g, dtype=F64)}
        if b["kind"] == "objective":
            block = Objective(f"b{k}", exprs, pts, data, weight=1.0, reduction=b["reduction"])
        else:
            mult = "global" if case["global"] else "pointwise"
            block = Constraint(f"b{k}", exprs, pts, data, b["form"], mult, b["reduction"])
        bound.append(block.bind(d, m, dtype, CPU))
    assert all(bb.fused for bb in bound)
    return compile_group(bound, dtype, CPU)


def as_dtype(program: ResidualProgram, dtype: torch.dtype) -> ResidualProgram:
    return dataclasses.replace(
        program,
        coef=program.coef.to(dtype),
        cols=program.cols.to(dtype),
        squared=program.squared.to(dtype),
        red=program.red.to(dtype),
    )


def _loss_and_grads(program, x, spec, lam, mu, backend, grad_mode):
    with torch.set_grad_enabled(grad_mode):
        loss, c = ops.block_loss(program, x, spec, lam, mu, backend=backend)
    if not grad_mode:
        return loss, c, []
    return loss, c, list(torch.autograd.grad(loss, [*spec.weights, *spec.biases]))


@SETTINGS
@given(loss_cases())
def test_fused_loss_matches_the_torch_twin(case):
    dtype = case["dtype"]
    x64, prog64 = build_program(case, F64)
    x, prog = build_program(case, dtype)
    spec64 = make_spec(
        case["d"], case["m"], case["width"], case["depth"], case["act"], case["seed"]
    )
    g = torch.Generator().manual_seed(case["seed"] + 3)
    n = x64.shape[0] // 2 if case["paired"] else x64.shape[0]
    r = prog64.n_res
    lam_shape = (r,) if case["global"] else (n, r)
    lam64 = 2 * torch.rand(lam_shape, generator=g, dtype=F64) - 0.5
    mu64 = 2 * torch.rand(r, generator=g, dtype=F64)
    lam, mu = lam64.to(dtype), mu64.to(dtype)
    assert prog.n_res == r and torch.equal(prog.table, prog64.table)

    grad = case["grad_mode"]
    want = _loss_and_grads(prog64, x64, cast_spec(spec64, F64), lam64, mu64, "torch", grad)
    got = _loss_and_grads(prog, x, cast_spec(spec64, dtype), lam, mu, "cpu", grad)
    twin = _loss_and_grads(prog, x, cast_spec(spec64, dtype), lam, mu, "torch", grad)
    assert got[0].shape == () and got[0].dtype == dtype and got[1].shape == (n, r)
    floors = scales(prog64, x64, spec64, lam64, mu64, want[2], TOL[dtype])
    for what, a, b, t in [("loss", got[0], want[0], twin[0]), ("C", got[1], want[1], twin[1])]:
        assert within(a, b, t, dtype, floors[what]), (what, rel_err(a, b), case)
    for k, (a, b, t) in enumerate(zip(got[2], want[2], twin[2], strict=True)):
        assert within(a, b, t, dtype, floors["grad"]), (k, rel_err(a, b), case)


def scales(program, x, spec, lam, mu, grads, tol: float) -> dict[str, float]:
    """Absolute error floors of C, the loss and the gradients: tol times the scale of what is
    summed. A residual is a sum of monomials, and a paired one a difference e(a) - e(b); where
    they cancel (r = 0 up to rounding) the relative error of the result means nothing, and the
    rounding of the terms, tol * max |e|, is the error to expect. (The fused op evaluates e(a)
    and e(b) of identical sides 1 ulp apart: C = 3.6e-15 in float32 where the twin gives 0.)"""
    with torch.no_grad():
        e = reference.residuals(dataclasses.replace(program, paired=False), x, spec)
    mag = float(e.abs().max()) if e.numel() else 0.0
    s = mag * mag + mag  # the size of C = r^2 or r made of terms of size mag
    c_floor = tol * s * max(1, e.shape[0]) ** 0.5
    rows = e.shape[0] // 2 if program.paired else e.shape[0]
    lam_abs = lam.abs() if lam.dim() == 2 else lam.abs().expand(rows, -1)  # [N, R]
    loss_floor = tol * float((program.red * (lam_abs * s + 0.5 * mu * s * s)).sum())
    grad_norm = float(torch.cat([g.reshape(-1) for g in grads]).norm()) if grads else 0.0
    return {"C": c_floor, "loss": loss_floor, "grad": tol * grad_norm + loss_floor}


def test_as_dtype_keeps_the_table():
    """The float32 programs of the loss property are those of float64 in another dtype."""
    case = {
        "d": 1,
        "m": 1,
        "paired": False,
        "global": False,
        "layout": "contiguous",
        "seed": 0,
        "blocks": [
            {
                "n": 3,
                "exprs": [[(1.0, [("J", 0, 0)], None)]],
                "kind": "objective",
                "form": "squared",
                "reduction": "mean",
            }
        ],
    }
    x64, p64 = build_program(case, F64)
    x32, p32 = build_program(case, F32)
    assert torch.equal(p32.table, p64.table) and torch.equal(as_dtype(p64, F32).coef, p32.coef)
    assert torch.equal(x32, x64.to(F32))
