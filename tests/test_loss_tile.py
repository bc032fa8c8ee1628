"""The fused per-tile CPU loss kernel (set_cpu_kernel("tile")) against the GEMM path and the twin.

The hand-written oracles of test_loss.py run on the default kernel (the tile kernel); this file
covers what is specific to the tile kernel: tile boundaries (point counts around multiples of 32
and 16 pairs), tiles that mix points with and without derivative terms, widths that are not
multiples of the vector length (up to the 128 limit, and the fallback above it), varying widths,
every activation, d up to 8, several outputs, both dtypes, and thread counts.
"""

from __future__ import annotations

import pytest
import torch

import fluxkern
from matrix import TOL, rel_err

pytestmark = pytest.mark.skipif("cpu" not in fluxkern.backends(), reason="needs the CPU build")

F64, F32 = torch.float64, torch.float32
INPUT_NAMES = "a b c e f g h k"


def _system(d, m, n_int, n_bnd, n_pair, widths, act="tanh", dtype=F64, seed=0):
    """A model and blocks on three point sets: interior residuals that read J (one objective,
    one constraint), a boundary constraint that reads y only, and (if n_pair) a periodic
    constraint that reads y and one entry of J."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if isinstance(widths, list):  # varying widths: an nn.Sequential (no input standardisation)
        acts = {"tanh": torch.nn.Tanh, "silu": torch.nn.SiLU, "sin": fluxkern.Sin}
        sizes = [d, *widths]
        layers: list[torch.nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [torch.nn.Linear(a, b, dtype=dtype), acts[act]()]
        net = torch.nn.Sequential(*layers, torch.nn.Linear(widths[-1], m, dtype=dtype))
    else:
        net = fluxkern.MLP(
            d,
            m,
            widths,
            3,
            act,
            input_shift=[0.1 * i for i in range(d)],
            input_scale=[1.0 + 0.3 * i for i in range(d)],
            dtype=dtype,
        )
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, torch.nn.Linear):
                layer.bias.uniform_(-0.3, 0.3, generator=g)
    xs = fluxkern.inputs(" ".join(INPUT_NAMES.split()[:d]))
    xs = xs if isinstance(xs, tuple) else (xs,)
    ys = fluxkern.outputs(" ".join(f"y{o}" for o in range(m)))
    ys = ys if isinstance(ys, tuple) else (ys,)
    src = fluxkern.data("src")

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=dtype)

    pde = sum(ys[o].d(xs[o % d]) for o in range(m)) + ys[0] * ys[-1] - src
    flux = [ys[o] - ys[0].d(xs[(o + 1) % d]) for o in range(1, m)] or [ys[0].d(xs[0]) - src]
    terms = [
        fluxkern.Objective("pde", pde, rand(n_int, d), {"src": rand(n_int)}, reduction="sum"),
        fluxkern.Constraint("flux", flux, rand(n_int, d), {"src": rand(n_int)}, reduction="sum"),
        fluxkern.Constraint("bc", [ys[o] * ys[o] - 0.5 for o in range(m)], rand(n_bnd, d)),
    ]
    if n_pair:
        a = rand(n_pair, d)
        b = a.clone()
        b[:, 0] += 1.0
        terms.append(fluxkern.Constraint("periodic", [ys[0], ys[-1].d(xs[-1])], (a, b)))
    return net, terms


def _evaluate(net, terms, backend, kernel="tile", seed=3):
    """Loss, C of every constraint and parameter gradients with random multipliers."""
    al = fluxkern.AugmentedLagrangian(net, terms, backend=backend)
    g = torch.Generator().manual_seed(seed)
    for st in al._state.values():
        st["lam"] = torch.rand(st["lam"].shape, generator=g, dtype=st["lam"].dtype) * 2 - 0.5
        st["mu"] = torch.rand(st["mu"].shape, generator=g, dtype=st["mu"].dtype)
    net.zero_grad(set_to_none=True)
    with fluxkern.cpu_kernel(kernel):
        loss, values = al._evaluate()
        loss.backward()
    grads = [p.grad.detach().clone() for p in net.parameters()]
    return loss.detach(), {k: v.detach() for k, v in values.items()}, grads


def _compare(net, terms, dtype, tol):
    ref = _evaluate(net, terms, "torch")
    for kernel in ("tile", "gemm"):
        loss, values, grads = _evaluate(net, terms, "cpu", kernel)
        assert rel_err(loss, ref[0]) < tol, kernel
        for name, c in values.items():
            assert rel_err(c, ref[1][name]) < tol, (kernel, name)
        for gp, gr in zip(grads, ref[2], strict=True):
            assert rel_err(gp, gr) < tol, kernel


@pytest.mark.parametrize(
    "n_int,n_bnd,n_pair",
    [(0, 1, 0), (1, 0, 1), (31, 1, 15), (32, 32, 16), (33, 7, 17), (45, 19, 40), (300, 64, 33)],
)
def test_tile_boundaries_and_mixed_tiles(n_int, n_bnd, n_pair):
    # 2 n_int + n_bnd rows: tiles straddle the interior / boundary split at odd offsets
    net, terms = _system(2, 3, n_int, n_bnd, n_pair, 20)
    _compare(net, terms, F64, TOL[F64])


@pytest.mark.parametrize("width", [1, 3, 5, 20, 33, 50, 64, 127, 128, 129, 200])
def test_widths(width):
    # 129 and 200 are above the tile kernel's limit: the GEMM path serves them
    net, terms = _system(2, 2, 40, 9, 5, width)
    _compare(net, terms, F64, TOL[F64])


@pytest.mark.parametrize("widths", [[7, 20, 5], [50, 3], [128, 1, 64, 9], [20] * 6])
def test_varying_widths(widths):
    net, terms = _system(3, 2, 37, 5, 3, widths)
    _compare(net, terms, F64, TOL[F64])


@pytest.mark.parametrize("act", ["tanh", "sin", "silu"])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_activations_and_dtypes(act, dtype):
    net, terms = _system(2, 4, 70, 11, 9, 30, act=act, dtype=dtype)
    _compare(net, terms, dtype, TOL[dtype])


@pytest.mark.parametrize("d,m", [(1, 1), (1, 2), (3, 1), (5, 4), (8, 3), (2, 9)])
def test_inputs_and_outputs(d, m):
    net, terms = _system(d, m, 41, 6, 4, 24)
    _compare(net, terms, F64, TOL[F64])


def test_deterministic_and_thread_counts_agree():
    net, terms = _system(2, 3, 2000, 300, 100, 50)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _evaluate(net, terms, "cpu")
        again = _evaluate(net, terms, "cpu")
        torch.set_num_threads(2)
        two = _evaluate(net, terms, "cpu")
        two_again = _evaluate(net, terms, "cpu")
    finally:
        torch.set_num_threads(before)
    # bitwise for a fixed thread count; rounding-level across thread counts (other sum order)
    assert torch.equal(one[0], again[0]) and torch.equal(two[0], two_again[0])
    for a, b in zip(one[2], again[2], strict=True):
        assert torch.equal(a, b)
    for a, b in zip(two[2], two_again[2], strict=True):
        assert torch.equal(a, b)
    for a, b in zip(one[2], two[2], strict=True):
        assert rel_err(a, b) < 1e-12


def test_nan_inputs_propagate():
    net, terms = _system(2, 2, 40, 5, 0, 20)
    terms[0].points[3, 1] = float("nan")
    loss, _, grads = _evaluate(net, terms, "cpu")
    assert torch.isnan(loss)


def test_cpu_kernel_setting():
    assert fluxkern.get_cpu_kernel() in ("tile", "gemm")
    before = fluxkern.get_cpu_kernel()
    with fluxkern.cpu_kernel("gemm"):
        assert fluxkern.get_cpu_kernel() == "gemm"
    assert fluxkern.get_cpu_kernel() == before
    with pytest.raises(ValueError, match="unknown CPU loss kernel"):
        fluxkern.set_cpu_kernel("fast")
    assert fluxkern.get_cpu_kernel() == before


def _advection(dtype=F64, flip=False):
    """u_t + 40 u_x in two residual families that are multiples of one direction (the kernel
    propagates J v with v = (40, 1) instead of two tangents), or, with flip, one family that is
    not (40 u_x + u_t and u_x - u_t: two directions)."""
    g = torch.Generator().manual_seed(11)
    torch.manual_seed(11)
    net = fluxkern.MLP(2, 2, 50, 4, input_shift=[3.0, 0.5], input_scale=[1.8, 0.3], dtype=dtype)
    x, t = fluxkern.inputs("x t")
    u, w = fluxkern.outputs("u w")
    k = fluxkern.data("k")
    pts = torch.rand(300, 2, generator=g, dtype=dtype)
    second = (u.d(x) - u.d(t)) if flip else k * (2 * u.d(t) + 80 * u.d(x)) + w * w.d(t) * 0.0
    terms = [
        fluxkern.Objective("pde", u.d(t) + 40.0 * u.d(x), pts, reduction="sum"),
        fluxkern.Constraint("second", [second, w - u], pts, {"k": torch.rand(300, generator=g)}),
        fluxkern.Constraint("ic", u - k, pts[:70], {"k": torch.rand(70, generator=g)}),
    ]
    return net, terms


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_one_tangent_direction(flip, dtype):
    net, terms = _advection(dtype, flip)
    _compare(net, terms, dtype, TOL[dtype])
