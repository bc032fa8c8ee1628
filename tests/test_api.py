"""Public API: MLP, jet on Sequentials, backends, build information."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fluxkern


def test_backends_lists_torch_and_cpu():
    b = fluxkern.backends()
    assert b[0] == "torch" and "cpu" in b
    assert ("cuda" in b) == (fluxkern._ext.has_cuda_kernels() and torch.cuda.is_available())


def test_build_info_reports_compiler_threads_and_cuda():
    info = fluxkern.build_info()
    assert info["compiler"] and info["threads"] >= 1
    assert isinstance(info["cuda"], bool) and isinstance(info["cuda_architectures"], str)
    assert info["cpu_kernels"]


def test_mlp_defaults_xavier_normal_zero_bias():
    torch.manual_seed(0)
    net = fluxkern.MLP(2, 3, 200, 2)
    assert all(torch.all(layer.bias == 0) for layer in net.layers)
    w = net.layers[1].weight
    assert abs(w.std().item() - (2 / (200 + 200)) ** 0.5) < 0.005
    assert net.layers[0].weight.dtype == torch.get_default_dtype()


def test_mlp_standardisation_folds_into_sequential():
    net = fluxkern.MLP(
        2, 1, 8, 2, input_shift=[1.0, 2.0], input_scale=[0.5, 4.0], dtype=torch.float64
    )
    x = torch.randn(10, 2, dtype=torch.float64)
    assert torch.allclose(net(x), net.to_sequential()(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"in_features": 0}, "in_features must be an integer in 1..8"),
        ({"width": 600}, "width must be an integer in 1..512"),
        ({"depth": 0}, "depth must be an integer in 1..16"),
        ({"out_features": 40}, "out_features must be an integer in 1..32"),
        ({"activation": "relu"}, "unsupported activation 'relu'"),
        ({"input_scale": [1.0, 0.0]}, "input_scale must be non-zero"),
        ({"input_shift": [1.0]}, r"input_shift must have shape \[2\]"),
    ],
)
def test_mlp_bad_arguments(kwargs, match):
    args = {"in_features": 2, "out_features": 1, "width": 4, "depth": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        fluxkern.MLP(**args)


def test_jet_rejects_unsupported_models():
    with pytest.raises(TypeError, match="unsupported model type Linear"):
        fluxkern.jet(nn.Linear(2, 2), torch.randn(3, 2))
    seq = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    with pytest.raises(TypeError, match="layer 1 of the Sequential is ReLU"):
        fluxkern.jet(seq, torch.randn(3, 2))
    mixed = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 4), nn.SiLU(), nn.Linear(4, 1))
    with pytest.raises(TypeError, match="mixes activations"):
        fluxkern.jet(mixed, torch.randn(3, 2))
    with pytest.raises(TypeError, match="at least one hidden layer"):
        fluxkern.jet(nn.Sequential(nn.Linear(2, 1)), torch.randn(3, 2))


def test_jet_default_backend_is_fused_on_cpu():
    net = fluxkern.MLP(2, 1, 4, 1)
    y, jac = fluxkern.jet(net, torch.randn(3, 2, requires_grad=True))
    # the fused op's eager autograd node (fluxkern.ops._Jet; the twin would record torch ops)
    assert type(y.grad_fn).__name__ == "_JetBackward"


def test_jet_x_shape_error():
    with pytest.raises(ValueError, match=r"x must be 2-D \[N, d\], got shape \[3\]"):
        fluxkern.jet(fluxkern.MLP(1, 1, 4, 1), torch.randn(3))
