"""The jet op against torch.func.jacfwd, its torch twin and autograd; gradcheck, opcheck."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.func import jacfwd, vmap

import fluxkern
from fluxkern import ops, reference
from fluxkern.nn import MlpSpec
from matrix import DTYPES, TOL, device_backends, rel_err

ACTS = ["tanh", "sin", "silu"]


def make_net(d, m, width, depth, act, dtype=torch.float64, device="cpu", seed=0):
    torch.manual_seed(seed)
    shift = torch.linspace(-0.3, 0.4, d).tolist()
    scale = torch.linspace(0.5, 1.7, d).tolist()
    net = fluxkern.MLP(
        d, m, width, depth, act, input_shift=shift, input_scale=scale, dtype=dtype, device=device
    )
    with torch.no_grad():  # non-zero biases so that every bias path is exercised
        for layer in net.layers:
            layer.bias.normal_(0, 0.3)
    return net


def jacfwd_oracle(net: fluxkern.MLP, x: torch.Tensor):
    """y and J from torch.func.jacfwd on the equivalent nn.Sequential."""
    seq = net.to_sequential()
    y = seq(x)
    jac = vmap(jacfwd(lambda xi: seq(xi)))(x)  # [N, m, d]
    return y, jac


@pytest.mark.parametrize("device,backend", device_backends())
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize(
    "n,d,width,depth,m",
    [(0, 2, 16, 2, 3), (1, 1, 5, 1, 1), (7, 3, 33, 3, 2), (4097, 2, 20, 2, 3), (13, 8, 7, 4, 5)],
)
def test_values_and_jacobian_match_jacfwd_float64(device, backend, act, n, d, width, depth, m):
    net = make_net(d, m, width, depth, act, device=device)
    x = torch.randn(n, d, dtype=torch.float64, device=device) * 1.5
    y, jac = fluxkern.jet(net, x, backend=backend)
    y_ref, jac_ref = jacfwd_oracle(net, x)
    assert y.shape == (n, m) and jac.shape == (n, m, d)
    if n:
        assert rel_err(y, y_ref) < TOL[torch.float64]
        assert rel_err(jac, jac_ref) < TOL[torch.float64]


@pytest.mark.parametrize("device,backend", device_backends())
@pytest.mark.parametrize("act", ACTS)
def test_gradients_of_random_scalar_match_autograd_float64(device, backend, act):
    net = make_net(3, 4, 24, 3, act, device=device)
    x = torch.randn(57, 3, dtype=torch.float64, device=device, requires_grad=True)
    gy = torch.randn(57, 4, dtype=torch.float64, device=device)
    gj = torch.randn(57, 4, 3, dtype=torch.float64, device=device)
    wanted = [*net.parameters(), x, net.input_shift, net.input_scale]
    net.input_shift.requires_grad_(True)
    net.input_scale.requires_grad_(True)

    y, jac = fluxkern.jet(net, x, backend=backend)
    got = torch.autograd.grad((y * gy).sum() + (jac * gj).sum(), wanted)
    s = net.spec()
    y_r, jac_r = reference.mlp_jet(x, s)
    ref = torch.autograd.grad((y_r * gy).sum() + (jac_r * gj).sum(), wanted)
    for g, r in zip(got, ref, strict=True):
        assert rel_err(g, r) < TOL[torch.float64]


@pytest.mark.parametrize("device,backend", device_backends())
@pytest.mark.parametrize("act", ACTS)
def test_float32_close_to_float64(device, backend, act):
    net64 = make_net(2, 3, 64, 4, act, device=device)
    net32 = copy.deepcopy(net64).float()
    x = torch.rand(300, 2, dtype=torch.float64, device=device) * 2 - 1
    x64 = x.clone().requires_grad_(True)
    y64, j64 = fluxkern.jet(net64, x64, backend="torch")
    x32 = x.float().requires_grad_(True)
    y32, j32 = fluxkern.jet(net32, x32, backend=backend)
    assert rel_err(y32, y64) < TOL[torch.float32]
    assert rel_err(j32, j64) < TOL[torch.float32]
    loss32 = (y32**2).sum() + (j32**2).sum()
    g32 = torch.autograd.grad(loss32, [*net32.parameters(), x32])
    loss64 = (y64**2).sum() + (j64**2).sum()
    g64 = torch.autograd.grad(loss64, [*net64.parameters(), x64])
    for a, b in zip(g32, g64, strict=True):
        assert rel_err(a, b) < TOL[torch.float32]


@pytest.mark.parametrize("act", ACTS)
def test_gradcheck_float64(act):
    net = make_net(2, 2, 3, 2, act)
    s = net.spec()
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    params = [t.detach().clone().requires_grad_(True) for t in [s.shift, s.scale]]
    ws = [w.detach().clone().requires_grad_(True) for w in s.weights]
    bs = [b.detach().clone().requires_grad_(True) for b in s.biases]

    def f(x, shift, scale, *wb):
        k = len(ws)
        return ops.mlp_jet(x, MlpSpec(shift, scale, wb[:k], wb[k:], act), backend="cpu")

    assert torch.autograd.gradcheck(f, (x, *params, *ws, *bs))


def _op_args(act="tanh", n=9, dtype=torch.float64, requires_grad=True):
    net = make_net(2, 3, 6, 2, act, dtype=dtype)
    s = net.spec()
    x = torch.randn(n, 2, dtype=dtype, requires_grad=requires_grad)
    return (
        x,
        s.shift,
        s.scale,
        [w.detach().requires_grad_(requires_grad) for w in s.weights],
        [b.detach().requires_grad_(requires_grad) for b in s.biases],
        act,
    )


@pytest.mark.parametrize("act", ACTS)
def test_opcheck(act):
    torch.library.opcheck(torch.ops.fluxkern.mlp_jet.default, _op_args(act))
    args = _op_args(act, requires_grad=False)
    y, jac, saved = torch.ops.fluxkern.mlp_jet(*args)
    torch.library.opcheck(
        torch.ops.fluxkern.mlp_jet_backward.default,
        (torch.randn_like(y), torch.randn_like(jac), *args, saved),
    )


# inductor compiles the surrounding ops with the C++ compiler (about 20 s here); aot_eager checks
# the tracing (fake kernels, autograd registration) alone.
@pytest.mark.parametrize("compile_backend", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph_matches_eager(compile_backend):
    net = make_net(2, 3, 16, 3, "tanh", dtype=torch.float32)
    x = torch.rand(50, 2)

    def loss_fn(x):
        y, jac = net.jet(x, backend="cpu")
        return (y**2).sum() + (jac**2).sum()

    compiled = torch.compile(loss_fn, fullgraph=True, backend=compile_backend)
    eager = loss_fn(x)
    g_eager = torch.autograd.grad(eager, list(net.parameters()))
    got = compiled(x)
    g_got = torch.autograd.grad(got, list(net.parameters()))
    assert torch.allclose(got, eager, rtol=1e-6)
    for a, b in zip(g_got, g_eager, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_non_contiguous_inputs():
    net = make_net(2, 3, 10, 2, "tanh")
    base = torch.randn(40, 4, dtype=torch.float64)
    x = base[::2, ::2]  # [20, 2], strided
    assert not x.is_contiguous()
    s = net.spec()
    weights = [w.detach().t().contiguous().t() for w in s.weights]  # transposed storage
    assert not weights[1].is_contiguous()
    y, jac = ops.mlp_jet(x, MlpSpec(s.shift, s.scale, weights, s.biases, "tanh"), backend="cpu")
    y_r, jac_r = reference.mlp_jet(x.contiguous(), s)
    assert rel_err(y, y_r) < 1e-12 and rel_err(jac, jac_r) < 1e-12


def test_sequential_with_different_widths_and_no_bias():
    torch.manual_seed(1)
    seq = torch.nn.Sequential(
        torch.nn.Linear(2, 9),
        torch.nn.SiLU(),
        torch.nn.Linear(9, 4, bias=False),
        torch.nn.SiLU(),
        torch.nn.Linear(4, 2),
    ).double()
    x = torch.randn(11, 2, dtype=torch.float64)
    y, jac = fluxkern.jet(seq, x, backend="cpu")
    assert rel_err(y, seq(x)) < 1e-12
    assert rel_err(jac, vmap(jacfwd(seq))(x)) < 1e-12


def test_nan_inputs_propagate():
    net = make_net(2, 3, 8, 2, "tanh")
    x = torch.randn(5, 2, dtype=torch.float64)
    x[2, 0] = float("nan")
    y, jac = net.jet(x, backend="cpu")
    assert torch.isnan(y[2]).all() and torch.isnan(jac[2]).all()
    keep = [0, 1, 3, 4]
    assert torch.isfinite(y[keep]).all() and torch.isfinite(jac[keep]).all()


def test_saturated_activations_stay_finite():
    net = make_net(1, 1, 4, 2, "tanh")
    x = torch.tensor([[-1e6], [1e6], [0.0]], dtype=torch.float64)
    y, jac = net.jet(x, backend="cpu")
    y_r, jac_r = net.jet(x, backend="torch")
    assert torch.isfinite(y).all() and torch.isfinite(jac).all()
    assert rel_err(y, y_r) < 1e-12 and rel_err(jac, jac_r) < 1e-12


def test_second_derivative_raises_clear_error():
    net = make_net(2, 1, 8, 2, "tanh")
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    y, jac = net.jet(x, backend="cpu")
    (g,) = torch.autograd.grad(jac.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="second derivatives.*flux.*backend=.torch."):
        torch.autograd.grad(g.sum(), x)
    # the torch twin does give second derivatives
    y, jac = net.jet(x, backend="torch")
    (g,) = torch.autograd.grad(jac.sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    assert torch.isfinite(h).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_forward_matches_jet_values(dtype):
    net = make_net(3, 2, 12, 2, "sin", dtype=dtype)
    x = torch.randn(6, 3, dtype=dtype)
    y, _ = net.jet(x)
    assert rel_err(y, net(x)) < TOL[dtype]
