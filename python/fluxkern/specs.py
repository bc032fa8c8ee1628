"""Argument bundles that the fused ops' wrappers and their twins take alike.

MlpSpec (the tensors and activation of an MLP; fluxkern.nn.mlp_spec builds one from a model)
and LbfgsHistory (the L-BFGS pair ring). Their own module, importing nothing of fluxkern, so
that ops, reference, program, nn and optim can all use them without an import cycle.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

__all__ = ["LbfgsHistory", "MlpSpec"]


class MlpSpec:
    """The tensors and activation of an MLP, as the jet op takes them.

    Attributes:
        shift: Input shift [d].
        scale: Input scale [d].
        weights: Linear weights [W_1, d], ..., [m, W_L].
        biases: Linear biases [W_1], ..., [m].
        activation: "tanh", "sin" or "silu".
    """

    def __init__(
        self,
        shift: Tensor,
        scale: Tensor,
        weights: list[Tensor],
        biases: list[Tensor],
        activation: str,
    ) -> None:
        self.shift = shift
        self.scale = scale
        self.weights = weights
        self.biases = biases
        self.activation = activation


class LbfgsHistory(NamedTuple):
    """The stored L-BFGS pairs as a ring, with their Gram matrices.

    Pair i of ``count`` (0 = oldest) is row (start + i) % H of s and y.

    Attributes:
        s: Steps [H, P].
        y: Gradient changes [H, P], rows as s.
        rho: 1 / (y . s) per row [H].
        sy: Gram matrix s_i . y_j by rows [H, H] (kept up to date by the direction op).
        yy: Gram matrix y_i . y_j by rows [H, H] (likewise).
        start: Row of the oldest pair.
        count: Number of stored pairs (0..H).
    """

    s: Tensor
    y: Tensor
    rho: Tensor
    sy: Tensor
    yy: Tensor
    start: int
    count: int
