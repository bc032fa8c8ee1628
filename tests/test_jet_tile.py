"""The per-tile CPU jet (csrc/kernels/jet_tile_cpu.h) against the torch twin, the GEMM path and
torch.func: values, every gradient (parameters, x, shift, scale), threads, the switch between the
two paths, and the saved-buffer contract."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.func import jacfwd, vmap

import fluxkern
from fluxkern import reference
from fluxkern.settings import cpu_kernel
from matrix import TOL, rel_err
from test_jet import ACTS, make_net


def _grads(net, x, gy, gj, backend):
    """y, J and d(<y, gy> + <J, gj>) / d(parameters, x, shift, scale)."""
    shift, scale = net.input_shift, net.input_scale
    shift.requires_grad_(True)
    scale.requires_grad_(True)
    xr = x.detach().requires_grad_(True)
    wanted = [*net.parameters(), xr, shift, scale]
    if backend == "twin":
        y, jac = reference.mlp_jet(xr, net.spec())
    else:
        y, jac = fluxkern.jet(net, xr, backend="cpu")
    grads = torch.autograd.grad((y * gy).sum() + (jac * gj).sum(), wanted)
    shift.requires_grad_(False)
    scale.requires_grad_(False)
    return [y.detach(), jac.detach(), *grads]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize(
    "n,d,width,depth,m", [(1, 1, 5, 1, 1), (33, 3, 20, 3, 2), (100, 2, 50, 4, 3), (70, 8, 7, 2, 5)]
)
def test_tile_matches_twin_and_gemm_float64(threads, act, n, d, width, depth, m):
    net = make_net(d, m, width, depth, act)
    torch.manual_seed(1)
    x = torch.randn(n, d, dtype=torch.float64)
    gy = torch.randn(n, m, dtype=torch.float64)
    gj = torch.randn(n, m, d, dtype=torch.float64)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with cpu_kernel("tile"):
            tile = _grads(net, x, gy, gj, "cpu")
        with cpu_kernel("gemm"):
            gemm = _grads(net, x, gy, gj, "cpu")
    finally:
        torch.set_num_threads(previous)
    twin = _grads(net, x, gy, gj, "twin")
    for a, b, c in zip(tile, gemm, twin, strict=True):
        assert rel_err(a, c) < TOL[torch.float64]
        assert rel_err(a, b) < TOL[torch.float64]


def test_tile_values_match_jacfwd_many_tiles():
    net = make_net(2, 3, 33, 3, "tanh")
    x = torch.randn(4097, 2, dtype=torch.float64)
    with cpu_kernel("tile"):
        y, jac = net.jet(x, backend="cpu")
    seq = net.to_sequential()
    assert rel_err(y, seq(x)) < TOL[torch.float64]
    assert rel_err(jac, vmap(jacfwd(seq))(x)) < TOL[torch.float64]


def test_tile_float32_close_to_float64():
    net64 = make_net(2, 3, 64, 4, "tanh")
    net32 = copy.deepcopy(net64).float()
    x = torch.rand(300, 2, dtype=torch.float64) * 2 - 1
    gy = torch.randn(300, 3, dtype=torch.float64)
    gj = torch.randn(300, 3, 2, dtype=torch.float64)
    with cpu_kernel("tile"):
        got = _grads(net32, x.float(), gy.float(), gj.float(), "cpu")
    want = _grads(net64, x, gy, gj, "twin")
    for a, b in zip(got, want, strict=True):
        assert rel_err(a.double(), b) < TOL[torch.float32]


def test_sequential_user_loss_matches_autograd():
    torch.manual_seed(2)
    seq = torch.nn.Sequential(
        torch.nn.Linear(2, 30),
        torch.nn.Tanh(),
        torch.nn.Linear(30, 30),
        torch.nn.Tanh(),
        torch.nn.Linear(30, 3),
    ).double()
    x = torch.rand(77, 2, dtype=torch.float64)
    with cpu_kernel("tile"):
        y, jac = fluxkern.jet(seq, x)
        loss = (y**2).sum() + (jac**2).sum() + jac.sum()  # jac.sum(): an expanded grad_J
        got = torch.autograd.grad(loss, list(seq.parameters()))
    xr = x.clone().requires_grad_(True)
    y_r = seq(xr)
    cols = [torch.autograd.grad(y_r[:, k].sum(), xr, create_graph=True)[0] for k in range(3)]
    jac_r = torch.stack(cols, 1)
    loss_r = (y_r**2).sum() + (jac_r**2).sum() + jac_r.sum()
    want = torch.autograd.grad(loss_r, list(seq.parameters()))
    assert rel_err(loss, loss_r) < TOL[torch.float64]
    for a, b in zip(got, want, strict=True):
        assert rel_err(a, b) < TOL[torch.float64]


@pytest.mark.parametrize("forward,backward", [("tile", "gemm"), ("gemm", "tile")])
def test_setting_changed_between_forward_and_backward(forward, backward):
    net = make_net(2, 3, 12, 2, "silu")
    x = torch.randn(40, 2, dtype=torch.float64)
    with cpu_kernel(forward):
        y, jac = net.jet(x, backend="cpu")
    with cpu_kernel(backward):
        got = torch.autograd.grad((y**2).sum() + (jac**3).sum(), list(net.parameters()))
    y_r, jac_r = reference.mlp_jet(x, net.spec())
    want = torch.autograd.grad((y_r**2).sum() + (jac_r**3).sum(), list(net.parameters()))
    for a, b in zip(got, want, strict=True):
        assert rel_err(a, b) < TOL[torch.float64]


def test_saved_buffer_is_a_marker_on_the_tile_path_only():
    for width, kernel, tile in [(128, "tile", True), (129, "tile", False), (20, "gemm", False)]:
        s = make_net(2, 3, width, 2, "tanh").spec()
        x = torch.randn(5, 2, dtype=torch.float64)
        with cpu_kernel(kernel):
            _, _, saved = torch.ops.fluxkern.mlp_jet(
                x, s.shift, s.scale, list(s.weights), list(s.biases), "tanh"
            )
        assert saved.numel() == (1 if tile else 7 * 5 * width * 2)


def test_second_derivative_through_tile_path_raises_clear_error():
    net = make_net(2, 1, 8, 2, "tanh")
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    with cpu_kernel("tile"):
        _, jac = net.jet(x, backend="cpu")
        (g,) = torch.autograd.grad(jac.sum(), x, create_graph=True)
        with pytest.raises(RuntimeError, match="second derivatives"):
            torch.autograd.grad(g.sum(), x)
