"""The dense quasi-Newton ops on the upper triangle of a symmetric H: sym_matvec (H x) and
sym_rank2_update_ (H += U W on j >= i).

Checked against their torch twins, against the full symmetric matrix built by hand, and (the
product) against torch.func's gradient of the quadratic form x.H x / 2, in both dtypes, at one
and two threads, at sizes around the vector width and the kernels' row split; the strictly lower
triangle is neither read (NaN there changes nothing) nor written.
"""

from __future__ import annotations

import pytest
import torch

import fluxkern
from fluxkern import ops, reference
from matrix import DTYPES, TOL, rel_err

needs_ext = pytest.mark.skipif("cpu" not in fluxkern.backends(), reason="needs the CPU build")
SIZES = [1, 2, 5, 8, 17, 63, 64, 129, 300]


def _upper(n, dtype, seed=0):
    """(h, full): h holds the upper triangle of the symmetric `full` [n, n] and NaN below."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    full = a + a.T
    h = torch.triu(full) + torch.tril(torch.full_like(full, float("nan")), -1)
    return h.to(dtype), full


@needs_ext
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_sym_matvec_is_the_full_product(n, dtype, threads, monkeypatch):
    torch.set_num_threads(threads)
    h, full = _upper(n, dtype)
    x = torch.randn(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    want = full @ x
    got = torch.ops.fluxkern.sym_matvec(h, x.to(dtype))
    assert got.dtype == dtype and got.shape == (n,)
    assert rel_err(got, want) < TOL[dtype]
    assert rel_err(reference.sym_matvec(h, x.to(dtype)), want) < TOL[dtype]
    if dtype == torch.float64:  # the gradient of x.H x / 2 is H x
        grad = torch.func.grad(lambda v: 0.5 * v @ (full @ v))(x)
        assert rel_err(got, grad) < TOL[dtype]


@needs_ext
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_sym_rank2_update_touches_the_upper_triangle_only(n, dtype, threads):
    torch.set_num_threads(threads)
    h, full = _upper(n, dtype, seed=2)
    g = torch.Generator().manual_seed(3)
    u = torch.randn(n, 2, generator=g, dtype=torch.float64)
    m = torch.randn(2, 2, generator=g, dtype=torch.float64)
    w = (m + m.T) @ u.T  # [2, n]: U W = U M U^T is symmetric
    want = full + u @ w
    got = h.clone()
    torch.ops.fluxkern.sym_rank2_update_(got, u.to(dtype), w.to(dtype))
    assert rel_err(torch.triu(got), torch.triu(want)) < TOL[dtype]
    assert bool(torch.isnan(torch.tril(got, -1)).sum() == n * (n - 1) // 2)  # not written
    twin = h.clone()
    reference.sym_rank2_update_(twin, u.to(dtype), w.to(dtype))
    assert rel_err(torch.triu(got), torch.triu(twin)) < TOL[dtype]
    # the updated triangle is the updated symmetric matrix: its product is (H + U W) x
    x = torch.randn(n, generator=g, dtype=torch.float64)
    assert rel_err(ops.sym_matvec(got, x.to(dtype)), want @ x) < TOL[dtype]


@needs_ext
def test_sym_matvec_is_deterministic_per_thread_count():
    h, _ = _upper(1000, torch.float64, seed=5)
    x = torch.randn(1000, dtype=torch.float64)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        first = torch.ops.fluxkern.sym_matvec(h, x)
        assert torch.equal(torch.ops.fluxkern.sym_matvec(h, x), first)


@needs_ext
def test_opcheck():
    h, _ = _upper(20, torch.float64)
    h = torch.triu(h.nan_to_num(0.0))
    x = torch.randn(20, dtype=torch.float64)
    u, w = torch.randn(20, 2, dtype=torch.float64), torch.randn(2, 20, dtype=torch.float64)
    torch.library.opcheck(torch.ops.fluxkern.sym_matvec, (h, x))
    torch.library.opcheck(torch.ops.fluxkern.sym_rank2_update_, (h.clone(), u, w))


@needs_ext
@pytest.mark.parametrize(
    "args,match",
    [
        (lambda h, x, u, w: (h[:, :-1], x), "square"),
        (lambda h, x, u, w: (h.t(), x), "contiguous"),
        (lambda h, x, u, w: (h.int(), x), "float32 or float64"),
        (lambda h, x, u, w: (h, x[:-1]), "x must be"),
        (lambda h, x, u, w: (h, x.float()), "dtype of h"),
    ],
)
def test_sym_matvec_bad_arguments(args, match):
    h, x = torch.eye(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    u, w = torch.ones(6, 2, dtype=torch.float64), torch.ones(2, 6, dtype=torch.float64)
    with pytest.raises((ValueError, TypeError, RuntimeError), match=match):
        torch.ops.fluxkern.sym_matvec(*args(h, x, u, w))


@needs_ext
@pytest.mark.parametrize(
    "args,match",
    [
        (lambda h, u, w: (h, u[:, :1], w), "u must be"),
        (lambda h, u, w: (h, u, w[:1]), "w must be"),
        (lambda h, u, w: (h, u.float(), w), "dtype of h"),
        (lambda h, u, w: (h[:, :-1], u, w), "square"),
    ],
)
def test_sym_rank2_update_bad_arguments(args, match):
    h = torch.eye(6, dtype=torch.float64)
    u, w = torch.ones(6, 2, dtype=torch.float64), torch.ones(2, 6, dtype=torch.float64)
    with pytest.raises((ValueError, TypeError, RuntimeError), match=match):
        torch.ops.fluxkern.sym_rank2_update_(*args(h, u, w))


@needs_ext
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_update_and_product_in_one_pass_is_both_in_turn(n, dtype, threads):
    """sym_rank2_update_matvec_ gives bitwise what the update and then the product give (the
    optimizer defers an update into the next product; a checkpoint or another reader applies it
    alone), writes the same triangle, and agrees with the twin and the full matrices."""
    torch.set_num_threads(threads)
    h, full = _upper(n, dtype, seed=6)
    g = torch.Generator().manual_seed(7)
    u = torch.randn(n, 2, generator=g, dtype=torch.float64)
    m = torch.randn(2, 2, generator=g, dtype=torch.float64)
    w = (m + m.T) @ u.T
    x = torch.randn(n, generator=g, dtype=torch.float64)
    ud, wd, xd = u.to(dtype), w.to(dtype), x.to(dtype)
    fused = h.clone()
    got = torch.ops.fluxkern.sym_rank2_update_matvec_(fused, ud, wd, xd)
    apart = h.clone()
    torch.ops.fluxkern.sym_rank2_update_(apart, ud, wd)
    want = torch.ops.fluxkern.sym_matvec(apart, xd)
    assert torch.equal(got, want)
    assert torch.equal(torch.triu(fused), torch.triu(apart))
    assert bool(torch.isnan(torch.tril(fused, -1)).sum() == n * (n - 1) // 2)
    assert rel_err(got, (full + u @ w) @ x) < TOL[dtype]
    twin = h.clone()
    assert rel_err(reference.sym_rank2_update_matvec_(twin, ud, wd, xd), got) < TOL[dtype]


@needs_ext
def test_update_and_product_opcheck_and_bad_arguments():
    h = torch.eye(20, dtype=torch.float64)
    x = torch.randn(20, dtype=torch.float64)
    u, w = torch.randn(20, 2, dtype=torch.float64), torch.randn(2, 20, dtype=torch.float64)
    torch.library.opcheck(torch.ops.fluxkern.sym_rank2_update_matvec_, (h.clone(), u, w, x))
    with pytest.raises((ValueError, RuntimeError), match="x must be"):
        torch.ops.fluxkern.sym_rank2_update_matvec_(h, u, w, x[:-1])
    with pytest.raises((ValueError, RuntimeError), match="w must be"):
        torch.ops.fluxkern.sym_rank2_update_matvec_(h, u, w.T.contiguous(), x)
