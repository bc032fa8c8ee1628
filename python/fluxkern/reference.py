"""Pure-torch twins of every fluxkern op, with the same signatures.

They are the fallback when the extension is not built (or ``backend="torch"`` is asked for) and
the oracle in tests: plain autograd differentiates them, to any order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["ACTIVATIONS", "activation_and_derivative", "mlp_jet"]

ACTIVATIONS = ("tanh", "sin", "silu")


def _tanh(z: Tensor) -> tuple[Tensor, Tensor]:
    t = torch.tanh(z)
    return t, 1 - t * t


def _sin(z: Tensor) -> tuple[Tensor, Tensor]:
    return torch.sin(z), torch.cos(z)


def _silu(z: Tensor) -> tuple[Tensor, Tensor]:
    sig = torch.sigmoid(z)
    return z * sig, sig * (1 + z * (1 - sig))


_ACT: dict[str, Callable[[Tensor], tuple[Tensor, Tensor]]] = {
    "tanh": _tanh,
    "sin": _sin,
    "silu": _silu,
}


def activation_and_derivative(activation: str) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """Returns the function z -> (s(z), s'(z)) of a hidden activation.

    Args:
        activation: "tanh", "sin" or "silu".

    Returns:
        A callable mapping a tensor to the activation and its derivative, elementwise.
    """
    try:
        return _ACT[activation]
    except KeyError:
        raise ValueError(
            f"unsupported activation {activation!r}; supported: {', '.join(map(repr, ACTIVATIONS))}"
        ) from None


def mlp_jet(
    x: Tensor,
    shift: Tensor,
    scale: Tensor,
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
    activation: str,
) -> tuple[Tensor, Tensor]:
    """MLP values and input Jacobian by forward-mode propagation in plain torch.

    Args:
        x: Points [N, d].
        shift: Input shift [d]; the network sees (x - shift) / scale.
        scale: Input scale [d].
        weights: Linear weights in nn.Linear layout, [W_1, d], [W_2, W_1], ..., [m, W_L].
        biases: Linear biases [W_1], ..., [m].
        activation: Hidden activation, "tanh", "sin" or "silu".

    Returns:
        y [N, m] and J = dy/dx [N, m, d], with J taken with respect to the raw x.
    """
    act = activation_and_derivative(activation)
    h = (x - shift) / scale  # [N, d]
    tangent = None  # [N, W, d]
    for layer, (a, b) in enumerate(zip(weights[:-1], biases[:-1], strict=True)):
        z = h @ a.t() + b  # [N, W]
        if layer == 0:
            zt = (a / scale).unsqueeze(0).expand(x.shape[0], -1, -1)  # [N, W, d]
        else:
            zt = torch.einsum("wk,nkj->nwj", a, tangent)  # [N, W, d]
        h, ds = act(z)
        tangent = ds.unsqueeze(-1) * zt
    y = h @ weights[-1].t() + biases[-1]  # [N, m]
    jac = torch.einsum("ow,nwj->noj", weights[-1], tangent)  # [N, m, d]
    return y, jac
