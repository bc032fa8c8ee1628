"""Residual expressions: symbols, polynomial form, derivatives, evaluation and misuse errors."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

import fluxkern
from fluxkern.expr import Symbol
from matrix import TOL, rel_err

F64 = torch.float64


def _key(mono):
    """A monomial as an order-free multiset of atoms."""
    return frozenset(Counter(mono).items())


def poly(e):
    """The expression's polynomial as {multiset of atoms: coefficient}."""
    out = {}
    for mono, c in e.polynomial().items():
        k = _key(mono)
        assert k not in out, "two entries for one monomial"
        out[k] = c
    return out


def P(*terms):
    """Expected polynomial from (coefficient, atom, atom, ...) tuples."""
    return {_key(t[1:]): float(t[0]) for t in terms}


U, QX, QY = ("y", 0), ("y", 1), ("y", 2)
X, Y = ("x", 0), ("x", 1)


def _ux(o, j):
    return ("J", o, j)


@pytest.fixture
def syms():
    x, y = fluxkern.inputs("x y")
    u, qx, qy = fluxkern.outputs("u qx qy")
    f, k = fluxkern.data("f k")
    return x, y, u, qx, qy, f, k


# ---------------------------------------------------------------------------------- symbols


def test_one_name_gives_one_symbol_several_give_a_tuple():
    x = fluxkern.inputs("x")
    assert isinstance(x, Symbol) and not isinstance(x, tuple)
    assert (x.kind, x.name, x.index) == ("input", "x", 0)
    syms = fluxkern.outputs("u qx qy")
    assert isinstance(syms, tuple) and len(syms) == 3
    assert [(s.kind, s.name, s.index) for s in syms] == [
        ("output", "u", 0),
        ("output", "qx", 1),
        ("output", "qy", 2),
    ]
    f, k = fluxkern.data("f, k")  # commas separate names too
    assert (f.kind, f.name, k.name) == ("data", "f", "k")
    t = fluxkern.inputs(" t ")
    assert isinstance(t, Symbol) and t.name == "t"


def test_a_trailing_comma_gives_a_tuple_and_unpacking_one_symbol_says_how():
    (x,) = fluxkern.inputs("x,")
    assert isinstance(x, Symbol) and x.name == "x"
    u, v = fluxkern.outputs("u, v,")
    assert (u.index, v.index) == (0, 1)
    with pytest.raises(TypeError, match=r"write x = fluxkern.inputs\('x'\), or"):
        (x,) = fluxkern.inputs("x")
    with pytest.raises(TypeError, match=r"fluxkern.data\('f,'\) for a tuple of one"):
        (f,) = fluxkern.data("f")


@pytest.mark.parametrize(
    "fn,names,match",
    [
        (fluxkern.inputs, "", "give input names as one string"),
        (fluxkern.outputs, "   ", "give output names as one string"),
        (fluxkern.inputs, ["x", "y"], "give input names as one string"),
        (fluxkern.outputs, "u v u", "duplicate output names in 'u v u'"),
        (fluxkern.data, "f 2k", "data name '2k' is not an identifier"),
    ],
)
def test_symbol_creation_errors(fn, names, match):
    with pytest.raises(ValueError, match=match):
        fn(names)


def test_symbol_order_is_column_index():
    """evaluate() reads input/output/Jacobian columns by the position of the name."""
    t, x = fluxkern.inputs("t x")
    a, b = fluxkern.outputs("a b")
    n = 5
    xs = torch.randn(n, 2, dtype=F64)
    ys = torch.randn(n, 2, dtype=F64)
    jac = torch.randn(n, 2, 2, dtype=F64)
    assert torch.equal(x.evaluate({}, ys, jac, xs), xs[:, 1])
    assert torch.equal(t.evaluate({}, ys, jac, xs), xs[:, 0])
    assert torch.equal(b.evaluate({}, ys, jac, xs), ys[:, 1])
    assert torch.equal(b.d(t).evaluate({}, ys, jac, xs), jac[:, 1, 0])
    assert torch.equal(a.d(x).evaluate({}, ys, jac, xs), jac[:, 0, 1])


def test_symbols_of_an_expression(syms):
    x, y, u, qx, qy, f, k = syms
    e = u * x + f * qx.d(y)
    assert set(e.symbols()) == {"u", "x", "f", "qx", "y"}
    assert e.symbols()["qx"] is qx
    assert set((u.d(y)).symbols()) == {"u", "y"}
    assert set(fluxkern.sin(k * u).symbols()) == {"k", "u"}


def test_symbols_of_different_kinds_with_one_name_cannot_be_combined():
    u_in = fluxkern.inputs("u")
    u_out = fluxkern.outputs("u")
    with pytest.raises(ValueError, match="two different symbols are named 'u'"):
        u_in + u_out
    with pytest.raises(ValueError, match="two different symbols are named 'u'"):
        u_out * u_in


def test_same_data_name_from_two_data_calls_combines():
    _, f1 = fluxkern.data("k f")
    f2 = fluxkern.data("f")
    e = f1 + f2
    assert poly(e) == P((2, ("c", "f")))


# ---------------------------------------------------------------------------------- arithmetic


def test_polynomial_coefficients(syms):
    x, y, u, qx, qy, f, k = syms
    assert poly(3 * u - 2) == P((3, U), (-2,))
    assert poly(2 - u) == P((2,), (-1, U))
    assert poly(1 + u) == P((1,), (1, U))
    assert poly(-u) == P((-1, U))
    assert poly(u / 4) == P((0.25, U))
    assert poly((u + 2 * qx) * u) == P((1, U, U), (2, U, QX))
    assert poly((u - qx) ** 2) == P((1, U, U), (-2, U, QX), (1, QX, QX))
    assert poly(u * qx) == poly(qx * u)
    assert poly(u * u.d(x) + qy * u.d(y)) == P((1, U, _ux(0, 0)), (1, QY, _ux(0, 1)))
    e = f * qx.d(x) / 4 - x * y * u + k * k
    assert poly(e) == P((0.25, ("c", "f"), _ux(1, 0)), (-1, X, Y, U), (1, ("c", "k"), ("c", "k")))
    assert poly(qx - u.d(x)) == P((1, QX), (-1, _ux(0, 0)))


def test_cancellation_and_zero(syms):
    x, y, u, qx, qy, f, k = syms
    z = u - u
    assert z.is_polynomial and poly(z) == {} and repr(z) == "0" and z.field_degree() == 0
    assert poly(0 * u) == {}
    assert poly(u * qx - qx * u + 1) == P((1,))


def test_numbers_and_one_element_tensors_combine(syms):
    x, y, u, qx, qy, f, k = syms
    assert poly(np.float64(2.5) * u) == P((2.5, U))
    assert poly(u * torch.tensor(3.0)) == P((3, U))
    assert poly(torch.tensor([0.5]) + u) == P((0.5,), (1, U))


def test_numpy_scalars_of_other_types_combine(syms):
    x, y, u, qx, qy, f, k = syms
    assert poly(np.float32(2.0) * u) == P((2, U))
    assert poly(u + np.int64(3)) == P((3,), (1, U))
    assert poly(u ** np.int64(2)) == P((1, U, U))


@pytest.mark.parametrize("bad", ["2", [1.0], True, torch.ones(3), None])
def test_combining_with_non_numbers_raises(syms, bad):
    u = syms[2]
    with pytest.raises(TypeError, match="cannot combine an expression with"):
        u + bad
    with pytest.raises(TypeError, match="cannot combine an expression with"):
        u * bad


def test_division_rules(syms):
    u, qx = syms[2], syms[3]
    with pytest.raises(TypeError, match="division by an expression is not supported"):
        u / qx
    with pytest.raises(ZeroDivisionError, match="divided by zero"):
        u / 0
    with pytest.raises(TypeError):
        2 / u


@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_power_by_small_positive_integers(syms, n):
    u = syms[2]
    assert poly(u**n) == P((1,) + (U,) * n)
    assert (u**n).field_degree() == n


@pytest.mark.parametrize("n", [0, -1, 9, 2.0, 0.5, True])
def test_power_rejects_other_exponents(syms, n):
    u = syms[2]
    with pytest.raises(ValueError, match=r"\*\* takes a small positive integer \(1\.\.8\)"):
        u**n


def test_expression_has_no_truth_value(syms):
    u = syms[2]
    with pytest.raises(TypeError, match="no truth value"):
        bool(u + 1)


def test_repr_names_symbols_and_derivatives(syms):
    x, y, u, qx, qy, f, k = syms
    assert repr(u) == "u"
    assert "u.d(y)" in repr(2 * u.d(y))
    assert "qx" in repr(qx - u.d(x)) and "u.d(x)" in repr(qx - u.d(x))
    assert repr(fluxkern.sin(u)) == "sin(u)"


# ---------------------------------------------------------------------------------- derivatives


def test_derivative_of_output_wrt_input(syms):
    x, y, u, qx, qy, f, k = syms
    assert poly(u.d(x)) == P((1, _ux(0, 0)))
    assert poly(qy.d(x)) == P((1, _ux(2, 0)))
    assert poly(qx.d(y)) == P((1, _ux(1, 1)))
    assert u.d(y).field_degree() == 1


def test_second_derivative_raises_naming_the_derivative(syms):
    x, y, u = syms[:3]
    with pytest.raises(ValueError, match=r"u\.d\(x\)\.d\(\.\.\.\) is a second derivative"):
        u.d(x).d(y)
    with pytest.raises(ValueError, match="first-order"):
        (2 * u.d(x)).d(x)
    with pytest.raises(ValueError, match="not first-order"):
        (u * u).d(x)


@pytest.mark.parametrize(
    "what,match",
    [
        ("output", r"u\.d\(\.\.\.\) needs an input symbol .* got output symbol 'qx'"),
        ("data", r"u\.d\(\.\.\.\) needs an input symbol .* got data symbol 'f'"),
        ("number", r"u\.d\(\.\.\.\) needs an input symbol .* got 2\.0"),
        ("expr", r"u\.d\(\.\.\.\) needs an input symbol"),
    ],
)
def test_derivative_wrt_non_input_raises(syms, what, match):
    x, y, u, qx, qy, f, k = syms
    arg = {"output": qx, "data": f, "number": 2.0, "expr": 2 * x}[what]
    with pytest.raises(ValueError, match=match):
        u.d(arg)


def test_derivative_of_non_output_raises(syms):
    x, y, u, qx, qy, f, k = syms
    with pytest.raises(ValueError, match="network outputs only; 'x' is an input symbol"):
        x.d(y)
    with pytest.raises(ValueError, match="network outputs only; 'f' is a data symbol"):
        f.d(x)
    with pytest.raises(ValueError, match="d\\(\\) is defined for a network output symbol"):
        fluxkern.sin(u).d(x)


# ---------------------------------------------------------------------------------- non-polynomial


def test_non_polynomial_functions(syms):
    x, y, u, qx, qy, f, k = syms
    for fn in (fluxkern.sin, fluxkern.cos, fluxkern.exp, fluxkern.tanh):
        e = fn(u) + u
        assert not e.is_polynomial
        assert e.field_degree() == 0
        with pytest.raises(ValueError, match="is not a polynomial"):
            e.polynomial()
    # of constants: folded to a number
    assert poly(fluxkern.sin(2.0)) == P((math.sin(2.0),))
    assert poly(fluxkern.exp(u - u + 1)) == P((math.e,))
    assert poly(fluxkern.cos(u - u)) == P((1,))


# ---------------------------------------------------------------------------------- evaluate


def _env(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(n, 2, generator=g, dtype=F64)
    ys = torch.randn(n, 3, generator=g, dtype=F64)
    jac = torch.randn(n, 3, 2, generator=g, dtype=F64)
    env = {"f": torch.randn(n, generator=g, dtype=F64), "k": torch.randn(n, generator=g, dtype=F64)}
    return env, ys, jac, xs


def test_evaluate_polynomial_matches_hand_computation(syms):
    x, y, u, qx, qy, f, k = syms
    env, ys, jac, xs = _env()
    e = 2 * x * u.d(y) + k * qx**2 - 3 + u * qy * qx.d(x) + f / 4
    got = e.evaluate(env, ys, jac, xs)
    want = (
        2 * xs[:, 0] * jac[:, 0, 1]
        + env["k"] * ys[:, 1] ** 2
        - 3
        + ys[:, 0] * ys[:, 2] * jac[:, 1, 0]
        + env["f"] / 4
    )
    assert got.shape == (6,)
    assert rel_err(got, want) <= TOL[F64]


def test_evaluate_non_polynomial_matches_hand_computation(syms):
    x, y, u, qx, qy, f, k = syms
    env, ys, jac, xs = _env(seed=1)
    e = 2 * fluxkern.sin(u) - fluxkern.exp(qx.d(y)) * k + fluxkern.tanh(x * qy) ** 2
    e = e + fluxkern.cos(u + f) / 3
    got = e.evaluate(env, ys, jac, xs)
    want = (
        2 * torch.sin(ys[:, 0])
        - torch.exp(jac[:, 1, 1]) * env["k"]
        + torch.tanh(xs[:, 0] * ys[:, 2]) ** 2
        + torch.cos(ys[:, 0] + env["f"]) / 3
    )
    assert rel_err(got, want) <= TOL[F64]


def test_evaluate_constant_has_one_value_per_point(syms):
    u = syms[2]
    env, ys, jac, xs = _env()
    got = (u - u + 2.5).evaluate(env, ys, jac, xs)
    assert torch.equal(got, torch.full((6,), 2.5, dtype=F64))


# ---------------------------------------------------------------------------------- field_degree


def test_field_degree(syms):
    x, y, u, qx, qy, f, k = syms
    cases = [
        (u, 1),
        (u.d(x), 1),
        (x * u, 1),
        (k * x * y, 0),
        (u - u + 3, 0),
        (u * qx.d(y), 2),
        (u * qy.d(x) * qx, 3),
        (u**3 + u, 3),
        (u**4, 4),
        (f * x * u * u + qx, 2),
        ((u + qx) ** 2 * qy.d(y), 3),
    ]
    for e, deg in cases:
        assert e.field_degree() == deg, repr(e)


# ---------------------------------------------------------------------------------- misuse at build


def _model(d=2, m=3):
    torch.manual_seed(0)
    return fluxkern.MLP(d, m, 5, 1, dtype=F64)


def _al(terms, d=2, m=3):
    return fluxkern.AugmentedLagrangian(_model(d, m), terms, backend="torch")


def test_data_column_not_supplied_names_it(syms):
    x, y, u, qx, qy, f, k = syms
    pts = torch.rand(7, 2, dtype=F64)
    obj = fluxkern.Objective("pde", qx.d(x) + qy.d(y) + f, pts)
    with pytest.raises(ValueError, match=r"block 'pde': data column 'f' is used but not supplied"):
        _al([obj])
    con = fluxkern.Constraint("flux", qx + k * u.d(x), pts, data={"f": torch.ones(7)})
    with pytest.raises(ValueError, match=r"block 'flux': data column 'k' .*supplied: \['f'\]"):
        _al([con])


def test_output_beyond_model_outputs_names_it():
    x, y = fluxkern.inputs("x y")
    u, qx, qy, w = fluxkern.outputs("u qx qy w")
    pts = torch.rand(4, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"block 'c': output 'w' is output 3 but the model has 3"):
        _al([fluxkern.Constraint("c", [u, w.d(x)], pts)])


def test_input_beyond_model_inputs_names_it():
    x, y, z = fluxkern.inputs("x y z")
    u = fluxkern.outputs("u")
    pts = torch.rand(4, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"block 'c': input 'z' is column 2 but the model has 2"):
        _al([fluxkern.Constraint("c", u.d(z), pts)], m=1)


def test_points_with_wrong_number_of_columns(syms):
    u = syms[2]
    pts = torch.rand(4, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"block 'bc': points have 3 columns but the model has 2"):
        _al([fluxkern.Constraint("bc", u, pts)])
    pair = (torch.rand(4, 1, dtype=F64), torch.rand(4, 1, dtype=F64))
    with pytest.raises(ValueError, match=r"block 'per': points have 1 columns"):
        _al([fluxkern.Constraint("per", u, pair)])


def test_points_of_wrong_shape(syms):
    u = syms[2]
    with pytest.raises(
        ValueError, match=r"block 'bc': points must be a \[N, d\] tensor, got \[5\]"
    ):
        fluxkern.Constraint("bc", u, torch.rand(5))
    with pytest.raises(ValueError, match=r"block 'bc': points must be .* got list"):
        fluxkern.Constraint("bc", u, [[0.0, 1.0]])
    a, b = torch.rand(4, 2), torch.rand(5, 2)
    with pytest.raises(
        ValueError, match=r"block 'per': paired point sets .* \[4, 2\] and \[5, 2\]"
    ):
        fluxkern.Constraint("per", u, (a, b))
    with pytest.raises(ValueError, match=r"block 'per': paired points must be a tuple \(a, b\)"):
        fluxkern.Constraint("per", u, (a, a, a))


def test_data_of_wrong_length_names_the_column(syms):
    x, y, u, qx, qy, f, k = syms
    pts = torch.rand(7, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"block 'pde': data column 'f' has shape \[8\], expected"):
        fluxkern.Objective("pde", qx.d(x) + f, pts, data={"f": torch.ones(8)})
    with pytest.raises(ValueError, match=r"data column 'f' has shape \[7, 2\]"):
        fluxkern.Objective("pde", qx.d(x) + f, pts, data={"f": torch.ones(7, 2)})
    with pytest.raises(TypeError, match=r"block 'pde': data column 'f' must be a tensor"):
        fluxkern.Objective("pde", qx.d(x) + f, pts, data={"f": [1.0] * 7})
    # a paired block takes [N] (both sides) or [2N]
    pair = (torch.rand(3, 2, dtype=F64), torch.rand(3, 2, dtype=F64))
    fluxkern.Constraint("ok3", k * u, pair, data={"k": torch.ones(3)})
    fluxkern.Constraint("ok6", k * u, pair, data={"k": torch.ones(6)})
    with pytest.raises(ValueError, match=r"block 'per': data column 'k' has shape \[4\]"):
        fluxkern.Constraint("per", k * u, pair, data={"k": torch.ones(4)})


def test_bad_block_arguments(syms):
    u = syms[2]
    pts = torch.rand(3, 2)
    with pytest.raises(ValueError, match="block 'c': unknown form 'cubed'"):
        fluxkern.Constraint("c", u, pts, form="cubed")
    with pytest.raises(ValueError, match="block 'c': unknown multiplier 'local'"):
        fluxkern.Constraint("c", u, pts, multiplier="local")
    with pytest.raises(ValueError, match="block 'c': unknown reduction 'max'"):
        fluxkern.Objective("c", u, pts, reduction="max")
    with pytest.raises(ValueError, match="block 'c': no expressions given"):
        fluxkern.Constraint("c", [], pts)
    with pytest.raises(TypeError, match="block 'c': expression 1 is a float"):
        fluxkern.Constraint("c", [u, 1.0], pts)
    with pytest.raises(ValueError, match="block 'c': 33 expressions; at most 32"):
        fluxkern.Constraint("c", [u] * 33, pts)
    with pytest.raises(ValueError, match="a block needs a non-empty name"):
        fluxkern.Constraint("", u, pts)


def test_duplicate_block_names_rejected(syms):
    u = syms[2]
    pts = torch.rand(3, 2, dtype=F64)
    a = fluxkern.Constraint("bc", u, pts)
    b = fluxkern.Objective("bc", u, pts)
    with pytest.raises(ValueError, match="block names must be unique"):
        _al([a, b])


def test_non_block_term_rejected_with_type_error(syms):
    u = syms[2]
    con = fluxkern.Constraint("bc", u, torch.rand(3, 2, dtype=F64))
    with pytest.raises(TypeError, match="terms must be Objective or Constraint, got str"):
        _al([con, "pde"])
