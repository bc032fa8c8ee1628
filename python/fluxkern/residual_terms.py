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

from fluxkern import ops, reference
from fluxkern.blocks import BoundBlock
from fluxkern.expr import UNKNOWN_KEY
from fluxkern.program import ResidualProgram
from fluxkern.specs import MlpSpec
from fluxkern.unknowns import UnknownSet

__all__ = [
    "ResidualTerm",
    "loss_derivatives",
    "parameter_vector",
    "torch_residual_jacobian",
    "unknown_columns",
]


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


def _unknown_values(raw: Tensor, unknowns: UnknownSet) -> dict[str, Tensor]:
    """Each unknown's value from the vector of the set's raw parameters [U] (differentiable)."""
    return {
        n: raw[i].exp() if unknowns.symbols[n].positive else raw[i]
        for i, n in enumerate(unknowns.names)
    }


def _raw_vector(unknowns: UnknownSet) -> Tensor:
    return torch.stack([unknowns.raw[n].detach() for n in unknowns.names])  # [U]


def torch_residual_jacobian(
    bound: BoundBlock, net: MlpSpec, unknowns: UnknownSet | None = None
) -> tuple[Tensor, Tensor]:
    """r [N, R] and dr/dtheta [N, R, P] of one block by torch.func.jacrev over the torch
    evaluation of its expressions (any block, fused or not; slower than the fused op).

    Args:
        bound: The bound block.
        net: The MLP.
        unknowns: The model's unknowns, if any: their raw parameters are U more columns.

    Returns:
        The residuals and their Jacobian [N, R, P + U] (no autograd graph).
    """
    n_theta = sum(w.numel() + b.numel() for w, b in zip(net.weights, net.biases, strict=True))

    def residuals(theta: Tensor) -> Tensor:
        weights, biases = _unflatten(theta[:n_theta], net)
        spec = MlpSpec(net.shift, net.scale, weights, biases, net.activation)
        y, jac = reference.mlp_jet(bound.x, spec)
        env = None
        if unknowns is not None:
            vals = _unknown_values(theta[n_theta:], unknowns)
            env = {UNKNOWN_KEY.format(n): v for n, v in vals.items()}
        return bound.residuals_torch(y, jac, env)

    theta = parameter_vector(net)
    if unknowns is not None:
        theta = torch.cat([theta, _raw_vector(unknowns).to(theta.dtype)])
    with torch.no_grad():
        r = residuals(theta)
    jac = torch.func.jacrev(residuals)(theta)  # [N, R, P + U]
    return r, jac.detach()


def unknown_columns(
    program: ResidualProgram, x: Tensor, net: MlpSpec, unknowns: UnknownSet
) -> Tensor:
    """dr/ds [N, R, U] of a fused group: the residuals' derivatives with respect to the raw
    parameters s of the unknowns (the Jacobian columns that Gauss-Newton appends).

    r_i is linear in each coefficient: dr_i/dcoef_t is monomial t's value without its
    coefficient (for t of residual i), so dr/ds = sum_t monomial_t dcoef_t/ds, with dcoef/ds
    [M, U] by torch.func.jacrev of :meth:`ResidualProgram.with_unknowns`.

    Args:
        program: The group's program (its constant coefficients, before the unknowns).
        x: Its points [P, d].
        net: The MLP.
        unknowns: The model's unknowns.

    Returns:
        [N, R, U] (no autograd graph), U in ``unknowns.names`` order.
    """

    def coef(raw: Tensor) -> Tensor:
        return program.with_unknowns(_unknown_values(raw, unknowns)).coef

    raw = _raw_vector(unknowns).to(program.coef.dtype)
    dcoef = torch.func.jacrev(coef)(raw).detach()  # [M, U]
    with torch.no_grad():
        y, jac = ops.mlp_jet(x, net)
        mono = monomial_values(program, y, jac)  # [P, M]
        if program.paired:
            n = mono.shape[0] // 2
            mono = mono[:n] - mono[n:]  # [N, M]
        res = program.table[:, 0].long()  # [M]
        onehot = torch.nn.functional.one_hot(res, program.n_res).to(mono.dtype)  # [M, R]
        return torch.einsum("nt,tu,tr->nru", mono, dcoef, onehot)


def monomial_values(program: ResidualProgram, y: Tensor, jac: Tensor) -> Tensor:
    """Each table row's monomial without its coefficient, at every point row: [P, M].

    Args:
        program: The group's program.
        y: Network values [P, m].
        jac: Input Jacobian [P, m, d].
    """
    p, m = y.shape
    fields = torch.cat([y, jac.reshape(p, -1), y.new_ones(p, 1)], dim=1)  # [P, m + m d + 1]
    colx = torch.cat([program.cols, program.cols.new_ones(p, 1)], dim=1)  # [P, K + 1]
    ix = program.table.long()
    out = colx[:, ix[:, 1]]
    for q in (2, 3, 4):
        out = out * fields[:, ix[:, q]]
    return out
