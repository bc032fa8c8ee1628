"""Bad input to the jet gets a clear error naming the argument and the shapes."""

from __future__ import annotations

import pytest
import torch

import fluxkern
from fluxkern import ops
from fluxkern.nn import MlpSpec


def _args(d=2, width=5, m=3, dtype=torch.float64):
    net = fluxkern.MLP(d, m, width, 2, dtype=dtype)
    s = net.spec()
    x = torch.randn(4, d, dtype=dtype)
    return x, s.shift, s.scale, [w.detach() for w in s.weights], [b.detach() for b in s.biases]


def call(x, shift, scale, weights, biases, act="tanh", backend="cpu"):
    return ops.mlp_jet(x, MlpSpec(shift, scale, weights, biases, act), backend=backend)


def test_x_wrong_rank():
    x, *rest = _args()
    with pytest.raises(ValueError, match=r"x must be 2-D \[N, d\], got shape \[4, 2, 1\]"):
        call(x.unsqueeze(-1), *rest)


def test_too_many_input_columns():
    x, shift, scale, w, b = _args()
    with pytest.raises(ValueError, match=r"d = 9 input columns .*supported: 1..8"):
        call(torch.randn(3, 9, dtype=torch.float64), shift, scale, w, b)


def test_weight_size_does_not_chain():
    x, shift, scale, w, b = _args()
    w[1] = torch.randn(5, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"weights\[1\] must be \[out, 5\].*got \[5, 6\]"):
        call(x, shift, scale, w, b)


def test_bias_size_mismatch():
    x, shift, scale, w, b = _args()
    b[0] = torch.zeros(4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"biases\[0\] must be \[5\].*got \[4\]"):
        call(x, shift, scale, w, b)


def test_bias_count_mismatch():
    x, shift, scale, w, b = _args()
    with pytest.raises(ValueError, match="3 weights but 2 biases"):
        call(x, shift, scale, w, b[:2])


def test_dtype_mismatch():
    x, shift, scale, w, b = _args()
    with pytest.raises(TypeError, match=r"weights\[0\] has dtype Float but x has Double"):
        call(x, shift, scale, [w[0].float(), *w[1:]], b)


def test_integer_input_rejected():
    x, *rest = _args()
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        call(x.long(), *rest)


def test_shift_shape():
    x, shift, scale, w, b = _args()
    with pytest.raises(ValueError, match=r"shift must be \[d\] = \[2\], got \[3\]"):
        call(x, torch.zeros(3, dtype=torch.float64), scale, w, b)


def test_unsupported_activation():
    with pytest.raises(ValueError, match="unsupported activation 'relu'.*'tanh', 'sin', 'silu'"):
        call(*_args(), act="relu")


def test_width_and_depth_limits():
    x, shift, scale, w, b = _args()
    wide = [torch.randn(513, 2, dtype=torch.float64), torch.randn(3, 513, dtype=torch.float64)]
    with pytest.raises(ValueError, match="hidden width 513 .*1..512"):
        call(x, shift, scale, wide, [torch.zeros(513, dtype=torch.float64), b[-1]])
    with pytest.raises(ValueError, match=r"2 linear layers|1 linear layers|hidden"):
        call(x, shift, scale, w[-1:], b[-1:])


def test_output_limit():
    x, shift, scale, w, b = _args()
    w[-1] = torch.randn(33, 5, dtype=torch.float64)
    b[-1] = torch.zeros(33, dtype=torch.float64)
    with pytest.raises(ValueError, match="33 outputs; supported: 1..32"):
        call(x, shift, scale, w, b)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'gpu'; choose from torch, cpu, cuda"):
        call(*_args(), backend="gpu")


@pytest.mark.skipif("cuda" in fluxkern.backends(), reason="checks the CPU-only build's message")
def test_cuda_backend_on_cpu_only_build_is_refused():
    with pytest.raises((RuntimeError, ValueError), match="cuda"):
        call(*_args(), backend="cuda")


def test_backward_saved_buffer_checked():
    x, shift, scale, w, b = _args()
    y, jac, saved = torch.ops.fluxkern.mlp_jet(x, shift, scale, w, b, "tanh")
    with pytest.raises(ValueError, match="saved must be the buffer returned by mlp_jet"):
        torch.ops.fluxkern.mlp_jet_backward(y, jac, x, shift, scale, w, b, "tanh", saved[:-1])
    with pytest.raises(ValueError, match=r"grad_J must be \[4, 3, 2\]"):
        torch.ops.fluxkern.mlp_jet_backward(y, y, x, shift, scale, w, b, "tanh", saved)
