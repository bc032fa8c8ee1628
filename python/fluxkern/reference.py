"""Pure-torch twins of every fluxkern op, with the same signatures.

They are the fallback when the extension is not built (or ``backend="torch"`` is asked for) and
the oracle in tests: plain autograd differentiates them, to any order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fluxkern.program import ResidualProgram
from fluxkern.specs import LbfgsHistory, MlpSpec

__all__ = [
    "ACTIVATIONS",
    "activation_and_derivative",
    "block_loss",
    "lbfgs_direction",
    "mlp_jet",
    "residual_jacobian",
    "residuals",
    "residuals_from_fields",
    "sym_matvec",
    "sym_rank2_update_",
    "sym_rank2_update_matvec_",
]

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


def mlp_jet(x: Tensor, net: MlpSpec) -> tuple[Tensor, Tensor]:
    """MLP values and input Jacobian by forward-mode propagation in plain torch.

    Args:
        x: Points [N, d].
        net: The MLP: input shift [d] and scale [d] (the network sees (x - shift) / scale),
            weights in nn.Linear layout [W_1, d], [W_2, W_1], ..., [m, W_L], biases [W_1],
            ..., [m] and the hidden activation ("tanh", "sin" or "silu").

    Returns:
        y [N, m] and J = dy/dx [N, m, d], with J taken with respect to the raw x.
    """
    shift, scale, weights, biases = net.shift, net.scale, net.weights, net.biases
    act = activation_and_derivative(net.activation)
    h = (x - shift) / scale  # [N, d]
    # tangent[j] = d h / d x_j: the d directions stacked in front, so that each layer's tangents
    # go through one matrix product with the layer's weights, as the values do
    tangent = None  # [d, N, W]
    for layer, (a, b) in enumerate(zip(weights[:-1], biases[:-1], strict=True)):
        z = h @ a.t() + b  # [N, W]
        if layer == 0:
            zt = (a / scale).t().unsqueeze(1)  # [d, 1, W]: the same at every point
        else:
            zt = tangent @ a.t()  # [d, N, W]
        h, ds = act(z)
        tangent = ds * zt  # [d, N, W]
    y = h @ weights[-1].t() + biases[-1]  # [N, m]
    jac = (tangent @ weights[-1].t()).permute(1, 2, 0)  # [N, m, d]
    return y, jac


def block_loss(
    program: ResidualProgram, x: Tensor, net: MlpSpec, lam: Tensor, mu: Tensor
) -> tuple[Tensor, Tensor]:
    """Augmented-Lagrangian loss of one fused group, in plain torch (the fused op's twin).

    L = sum over points and residuals i of red_i (lam_i C_i + mu_i / 2 C_i^2), C_i = r_i^2 where
    squared_i is 1, else r_i (see :mod:`fluxkern.program` for the residuals and the table).

    Args:
        program: The group's residual program (table, coefficients, columns, forms, reductions,
            residual count, pairing).
        x: Points [P, d]; for a paired program P = 2N and x = cat(a, b).
        net: The MLP (shift, scale, weights, biases, activation, as for :func:`mlp_jet`).
        lam: Multipliers [N, R] (pointwise) or [R] (global).
        mu: Penalties [R].

    Returns:
        The loss (a scalar) and C [N, R] (detached).
    """
    squared, red = program.squared, program.red
    r = residuals(program, x, net)
    c = torch.where(squared != 0, r * r, r)
    loss = (red * (lam * c + 0.5 * mu * c * c)).sum()
    return loss, c.detach()


def residuals(program: ResidualProgram, x: Tensor, net: MlpSpec) -> Tensor:
    """The raw residuals r_i of a fused group at every point (pair), in plain torch.

    Differentiable (any order) with respect to every tensor through plain autograd.

    Args:
        program: The group's residual program.
        x: Points [P, d]; for a paired program P = 2N and x = cat(a, b).
        net: The MLP.

    Returns:
        r [N, R]: r = e for an unpaired program, r = e(a) - e(b) for a paired one.
    """
    y, jac = mlp_jet(x, net)
    e = residuals_from_fields(program, y, jac)  # [P, R]
    n = e.shape[0] // 2 if program.paired else e.shape[0]
    return e[:n] - e[n:] if program.paired else e


def residuals_from_fields(program: ResidualProgram, y: Tensor, jac: Tensor) -> Tensor:
    """The sums e_i of the monomial table at every point row, from the fields y and J.

    Args:
        program: The group's residual program.
        y: Network values [P, m].
        jac: Input Jacobian [P, m, d].

    Returns:
        e [P, R] (not paired up: a paired program's r is e[:N] - e[N:]).
    """
    cols, table, coef = program.cols, program.table, program.coef
    p, m = y.shape
    fields = torch.cat(
        [y, jac.reshape(p, m * jac.shape[2]), y.new_ones(p, 1)], dim=1
    )  # [P, m + m d + 1]
    colx = torch.cat([cols, cols.new_ones(p, 1)], dim=1)  # [P, K + 1]; index -1 -> ones
    ix = table.long()
    terms = coef * colx[:, ix[:, 1]]
    for q in (2, 3, 4):
        terms = terms * fields[:, ix[:, q]]
    return y.new_zeros(p, program.n_res).index_add(1, ix[:, 0], terms)  # [P, R]


def _second_derivative(activation: str, z: Tensor, s: Tensor, ds: Tensor) -> Tensor:
    """s''(z) of a hidden activation, given s(z) and s'(z)."""
    if activation == "tanh":
        return -2 * s * ds
    if activation == "sin":
        return -s
    sig = torch.sigmoid(z)
    return sig * (1 - sig) * (2 + z * (1 - 2 * sig))


def _residual_field_gradient(program: ResidualProgram, y: Tensor, jac: Tensor) -> Tensor:
    """dr_i/dF_f at every point row: [P, R, m + m d] (F = the fields y, J of program.py)."""
    p, m = y.shape
    nf = m + m * jac.shape[2]
    fields = torch.cat([y, jac.reshape(p, nf - m), y.new_ones(p, 1)], dim=1)  # [P, nf + 1]
    colx = torch.cat([program.cols, program.cols.new_ones(p, 1)], dim=1)  # [P, K + 1]
    ix = program.table.long()  # [M, 5]
    fx = torch.where(ix[:, 2:] < 0, nf, ix[:, 2:])  # [M, 3]; -1 -> the ones slot nf
    f = fields[:, fx]  # [P, M, 3]
    base = program.coef * colx[:, ix[:, 1]]  # [P, M]
    partial = torch.stack(
        [f[..., 1] * f[..., 2], f[..., 0] * f[..., 2], f[..., 0] * f[..., 1]], dim=-1
    ) * base.unsqueeze(-1)  # [P, M, 3]: d term / d factor q
    slot = ix[:, :1] * (nf + 1) + fx  # [M, 3]: (residual, field) in [R, nf + 1]
    g = y.new_zeros(p, program.n_res * (nf + 1))
    g.index_add_(1, slot.reshape(-1), partial.reshape(p, slot.numel()))
    return g.reshape(p, program.n_res, nf + 1)[..., :nf]


def residual_jacobian(program: ResidualProgram, x: Tensor, net: MlpSpec) -> tuple[Tensor, Tensor]:
    """Residuals and their Jacobian with respect to all network parameters, in plain torch.

    The twin of the fused residual-Jacobian op: one forward jet with its intermediates saved,
    then the reverse pass of DESIGN.md section 3 batched over (point, residual), seeded with
    dr_i/dy and dr_i/dJ of each residual (the product rule on the monomial table). No
    per-point Python loop; memory O(P R W (W + d)).

    Args:
        program: The group's residual program.
        x: Points [P, d]; for a paired program P = 2N and x = cat(a, b).
        net: The MLP.

    Returns:
        r [N, R] (as :func:`residuals`) and jac [N, R, n_params] = dr/dtheta, theta the
        parameters flattened as weights[0], biases[0], weights[1], biases[1], ... (each
        row-major; fluxkern.ops.parameter_layout). Not differentiable (computed under no_grad).
    """
    with torch.no_grad():
        return _residual_jacobian(program, x, net)


def _residual_jacobian(program: ResidualProgram, x: Tensor, net: MlpSpec) -> tuple[Tensor, Tensor]:
    act = activation_and_derivative(net.activation)
    weights, biases, scale = net.weights, net.biases, net.scale
    hs = [(x - net.shift) / scale]  # h_l [P, W_l]; h_0: the standardised inputs
    ts: list[Tensor] = []  # T_l [P, W_l, d] for l >= 1
    zts, dss, d2s = [], [], []  # Zt_l [P, W_l, d], s'(z_l), s''(z_l) [P, W_l]
    for layer, (a, b) in enumerate(zip(weights[:-1], biases[:-1], strict=True)):
        z = hs[-1] @ a.t() + b  # [P, W]
        if layer == 0:
            zt = (a / scale).unsqueeze(0).expand(x.shape[0], -1, -1)  # [P, W, d]
        else:
            zt = torch.einsum("wk,pkj->pwj", a, ts[-1])  # [P, W, d]
        h, ds = act(z)
        hs.append(h)
        zts.append(zt)
        dss.append(ds)
        d2s.append(_second_derivative(net.activation, z, h, ds))
        ts.append(ds.unsqueeze(-1) * zt)
    a_o = weights[-1]
    y = hs[-1] @ a_o.t() + biases[-1]  # [P, m]
    jac = torch.einsum("ow,pwj->poj", a_o, ts[-1])  # [P, m, d]
    e = residuals_from_fields(program, y, jac)  # [P, R]
    p, m, d = jac.shape
    g = _residual_field_gradient(program, y, jac)  # [P, R, m + m d]
    ybar, jbar = g[..., :m], g[..., m:].reshape(p, program.n_res, m, d)  # [P, R, m], [P, R, m, d]
    grads_w: list[Tensor] = [ybar] * len(weights)
    grads_b: list[Tensor] = [ybar] * len(weights)
    grads_w[-1] = torch.einsum("pro,pw->prow", ybar, hs[-1]) + torch.einsum(
        "proj,pwj->prow", jbar, ts[-1]
    )
    hbar = torch.einsum("ow,pro->prw", a_o, ybar)  # [P, R, W]
    tbar = torch.einsum("ow,proj->prwj", a_o, jbar)  # [P, R, W, d]
    for layer in reversed(range(len(weights) - 1)):
        ds, zt = dss[layer].unsqueeze(1), zts[layer].unsqueeze(1)  # [P, 1, W], [P, 1, W, d]
        zbar = hbar * ds + (tbar * zt).sum(-1) * d2s[layer].unsqueeze(1)  # [P, R, W]
        ztbar = tbar * ds.unsqueeze(-1)  # [P, R, W, d]
        gw = torch.einsum("prw,pk->prwk", zbar, hs[layer])  # [P, R, W, W_prev]
        if layer == 0:
            gw = gw + ztbar / scale  # T_0 = diag(1 / scale)
        else:
            gw = gw + torch.einsum("prwj,pkj->prwk", ztbar, ts[layer - 1])
            hbar = torch.einsum("wk,prw->prk", weights[layer], zbar)
            tbar = torch.einsum("wk,prwj->prkj", weights[layer], ztbar)
        grads_w[layer], grads_b[layer] = gw, zbar
    r_all = e.shape[1]
    params = [t for pair in zip(weights, biases, strict=True) for t in pair]
    grads = [t for pair in zip(grads_w, grads_b, strict=True) for t in pair]
    flat = [g.reshape(p, r_all, t.numel()) for g, t in zip(grads, params, strict=True)]
    full = torch.cat(flat, dim=-1) if flat else e.new_zeros(p, r_all, 0)  # [P, R, n_params]
    if program.paired:
        n = p // 2
        return e[:n] - e[n:], full[:n] - full[n:]
    return e, full


def lbfgs_direction(grad: Tensor, history: LbfgsHistory, new_row: int, h_diag: float) -> Tensor:
    """Pure-torch twin of the L-BFGS direction op: d = -H grad by the classic two-loop recursion.

    (The fused op computes the same recursion on the Gram matrices of the pairs; this twin uses
    the vectors directly, so it is also an independent check of that rewrite.)

    Args:
        grad: Flat gradient [P].
        history: The pairs (fluxkern.specs.LbfgsHistory); row and column ``new_row`` of its
            Gram matrices sy and yy are filled in here.
        new_row: Row of a pair stored since the last call, or -1.
        h_diag: Scale of the initial inverse Hessian (y . s / y . y of the newest pair).

    Returns:
        The direction d [P].
    """
    s, y, rho, sy, yy, start, count = history
    h = s.shape[0]
    rows = [(start + i) % h for i in range(count)]
    if new_row >= 0 and count:
        idx = torch.tensor(rows, device=s.device)
        sy[idx, new_row] = s[idx] @ y[new_row]
        sy[new_row, idx] = y[idx] @ s[new_row]
        yy[idx, new_row] = y[idx] @ y[new_row]
        yy[new_row, idx] = yy[idx, new_row]
    q = grad.neg()
    alpha = [0.0] * count
    for i in reversed(range(count)):
        alpha[i] = s[rows[i]].dot(q) * rho[rows[i]]
        q = q - alpha[i] * y[rows[i]]
    d = q * h_diag
    for i in range(count):
        beta = y[rows[i]].dot(d) * rho[rows[i]]
        d = d + (alpha[i] - beta) * s[rows[i]]
    return d


def sym_matvec(h: Tensor, x: Tensor) -> Tensor:
    """Pure-torch twin of the sym_matvec op: H x for the symmetric H whose upper triangle
    (j >= i) h holds; h's strictly lower triangle is not used.

    Args:
        h: [P, P], the upper triangle of H.
        x: [P].

    Returns:
        H x [P].
    """
    upper = torch.triu(h)
    return upper @ x + torch.triu(h, 1).t() @ x


def sym_rank2_update_(h: Tensor, u: Tensor, w: Tensor) -> None:
    """Pure-torch twin of the sym_rank2_update_ op: h_ij += u_i0 w_0j + u_i1 w_1j for j >= i,
    in place; the strictly lower triangle of h is left as it is.

    Args:
        h: [P, P], the upper triangle of a symmetric matrix (updated in place).
        u: [P, 2].
        w: [2, P].
    """
    h.add_(torch.triu(u @ w))


def sym_rank2_update_matvec_(h: Tensor, u: Tensor, w: Tensor, x: Tensor) -> Tensor:
    """Pure-torch twin of the sym_rank2_update_matvec_ op: :func:`sym_rank2_update_` on h in
    place, then :func:`sym_matvec` with the updated triangle.

    Args:
        h: [P, P], the upper triangle of a symmetric matrix (updated in place).
        u: [P, 2].
        w: [2, P].
        x: [P].

    Returns:
        (the updated H) x [P].
    """
    sym_rank2_update_(h, u, w)
    return sym_matvec(h, x)
