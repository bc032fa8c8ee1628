"""Pure-torch twins of every fluxkern op, with the same signatures.

They are the fallback when the extension is not built (or ``backend="torch"`` is asked for) and
the oracle in tests: plain autograd differentiates them, to any order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def block_loss(
    program: ResidualProgram,
    x: Tensor,
    net: MlpSpec,
    lam: Tensor,
    mu: Tensor,
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
    cols, table, coef = program.cols, program.table, program.coef
    squared, red, n_res, paired = program.squared, program.red, program.n_res, program.paired
    y, jac = mlp_jet(x, net.shift, net.scale, net.weights, net.biases, net.activation)
    p, m = y.shape
    fields = torch.cat(
        [y, jac.reshape(p, m * x.shape[1]), y.new_ones(p, 1)], dim=1
    )  # [P, m + m d + 1]
    colx = torch.cat([cols, cols.new_ones(p, 1)], dim=1)  # [P, K + 1]; index -1 -> ones
    ix = table.long()
    terms = coef * colx[:, ix[:, 1]]
    for q in (2, 3, 4):
        terms = terms * fields[:, ix[:, q]]
    e = y.new_zeros(p, n_res).index_add(1, ix[:, 0], terms)  # [P, R]
    n = p // 2 if paired else p
    r = e[:n] - e[n:] if paired else e
    c = torch.where(squared != 0, r * r, r)
    loss = (red * (lam * c + 0.5 * mu * c * c)).sum()
    return loss, c.detach()


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
