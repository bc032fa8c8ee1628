"""Per-residual pieces of the augmented-Lagrangian loss, for curvature (Gauss-Newton) optimizers.

Every block's loss is a sum over its rows (point n, residual i) of a scalar function of the raw
residual r = r_i(x_n):

    squared form (objectives, "squared" constraints): f(r) = red (lam r^2 + mu / 2 r^4)
    signed form:                                      f(r) = red (lam r + mu / 2 r^2)

(see :mod:`fluxkern.program`; an objective has lam = weight, mu = 0). So with J = dr/dtheta the
gradient is J^T f'(r) and the generalised Gauss-Newton curvature J^T diag(f''(r)) J. f'' is
red (2 lam + 6 mu r^2) (squared) or red mu (signed); it is negative only where a squared
constraint has a negative multiplier, and is clamped at 0 there (the GGN then keeps the convex
part of the loss; :attr:`ResidualTerm.clamped` counts such rows).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from fluxkern import reference
from fluxkern.blocks import BoundBlock
from fluxkern.specs import MlpSpec

__all__ = ["ResidualTerm", "loss_derivatives", "parameter_vector", "torch_residual_jacobian"]


class ResidualTerm(NamedTuple):
    """One block's residual rows with the loss derivatives the Gauss-Newton step needs.

    Attributes:
        name: The block's name.
        r: Raw residuals [N, R].
        jac: dr/dtheta [N, R, P], theta flattened as weights[0], biases[0], weights[1], ...
        fprime: df/dr [N, R] (the gradient is sum jac^T fprime).
        fsecond: d2f/dr2 clamped at >= 0, [N, R].
        clamped: Rows whose f'' was negative (set to 0).
    """

    name: str
    r: Tensor
    jac: Tensor
    fprime: Tensor
    fsecond: Tensor
    clamped: int


def loss_derivatives(
    r: Tensor, lam: Tensor, mu: Tensor, squared: Tensor, red: Tensor
) -> tuple[Tensor, Tensor, int]:
    """f'(r) and max(f''(r), 0) of the per-row loss (module doc) and the number clamped.

    Args:
        r: Residuals [N, R].
        lam: Multipliers [N, R] or [R].
        mu: Penalties [R].
        squared: 1 for the squared form, 0 for the signed form, [R].
        red: Reduction factors [R].

    Returns:
        fprime [N, R], fsecond [N, R] (>= 0) and the count of negative f'' clamped.
    """
    sq = squared != 0  # [R]
    fp = torch.where(sq, 2 * lam * r + 2 * mu * r**3, lam + mu * r) * red  # [N, R]
    fs = torch.where(sq, 2 * lam + 6 * mu * r * r, mu.expand_as(r)) * red  # [N, R]
    neg = fs < 0
    return fp, fs.clamp_min(0.0), int(neg.sum())


def parameter_vector(net: MlpSpec) -> Tensor:
    """theta [P]: weights[0], biases[0], weights[1], ... flattened row-major (detached)."""
    parts = []
    for w, b in zip(net.weights, net.biases, strict=True):
        parts += [w.detach().reshape(-1), b.detach().reshape(-1)]
    return torch.cat(parts)


def _unflatten(theta: Tensor, net: MlpSpec) -> tuple[list[Tensor], list[Tensor]]:
    weights, biases, k = [], [], 0
    for w, b in zip(net.weights, net.biases, strict=True):
        weights.append(theta[k : k + w.numel()].view(w.shape))
        k += w.numel()
        biases.append(theta[k : k + b.numel()].view(b.shape))
        k += b.numel()
    return weights, biases


def torch_residual_jacobian(bound: BoundBlock, net: MlpSpec) -> tuple[Tensor, Tensor]:
    """r [N, R] and dr/dtheta [N, R, P] of one block by torch.func.jacrev over the torch
    evaluation of its expressions (any block, fused or not; slower than the fused op).

    Args:
        bound: The bound block.
        net: The MLP.

    Returns:
        The residuals and their Jacobian (no autograd graph).
    """

    def residuals(theta: Tensor) -> Tensor:
        weights, biases = _unflatten(theta, net)
        spec = MlpSpec(net.shift, net.scale, weights, biases, net.activation)
        y, jac = reference.mlp_jet(bound.x, spec)
        return bound.residuals_torch(y, jac)

    theta = parameter_vector(net)
    with torch.no_grad():
        r = residuals(theta)
    jac = torch.func.jacrev(residuals)(theta)  # [N, R, P]
    return r, jac.detach()
