"""The poisson benchmark case (PROBLEMS.md demo) and its losses as users write them by hand.

-lap u = f on [0,1]^2 with f = 2 pi^2 sin(pi x) sin(pi y) and u = 0 on the boundary. Flux form:
outputs (u, qx, qy), objective div q + f, constraints q - grad u (interior) and u (boundary).
Every loss below is written three ways for the side-by-side benchmarks: fluxkern terms, plain
PyTorch with torch.autograd.grad(create_graph=True), and torch.func (vmap of jacfwd). The
augmented-Lagrangian losses take the multipliers as tensors so that all contenders compute the
same number.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacfwd, vmap

import fluxkern as fk

__all__ = [
    "PoissonPoints",
    "flux_al_loss_autograd",
    "flux_al_loss_func",
    "flux_penalty_loss_autograd",
    "flux_terms",
    "make_net",
    "make_points",
    "pinn_loss_autograd",
    "source",
]


class PoissonPoints:
    """Interior points xi [N, 2], boundary points xb [Nb, 2] and the source f [N] at xi."""

    def __init__(self, xi: Tensor, xb: Tensor) -> None:
        self.xi, self.xb = xi, xb
        self.f = source(xi)  # [N]


def source(x: Tensor) -> Tensor:
    """f = 2 pi^2 sin(pi x) sin(pi y) at points [N, 2]."""
    return 2 * math.pi**2 * torch.sin(math.pi * x[:, 0]) * torch.sin(math.pi * x[:, 1])


def make_points(n: int, nb: int, dtype: torch.dtype, device: str = "cpu") -> PoissonPoints:
    """n uniform interior points and nb boundary points (a quarter on each side), seed 0."""
    gen = torch.Generator().manual_seed(0)
    xi = torch.rand(n, 2, generator=gen, dtype=dtype)  # [N, 2]
    t = torch.rand(nb, generator=gen, dtype=dtype)  # [Nb]
    side = torch.arange(nb) % 4
    xb = torch.stack(
        [
            torch.where(side == 0, 0.0, torch.where(side == 1, 1.0, t)),
            torch.where(side == 2, 0.0, torch.where(side == 3, 1.0, t)),
        ],
        1,
    ).to(dtype)  # [Nb, 2]
    return PoissonPoints(xi.to(device), xb.to(device))


def make_net(
    width: int, depth: int, outputs: int, dtype: torch.dtype, device: str = "cpu", seed: int = 0
) -> fk.MLP:
    """A tanh MLP 2 -> width x depth -> outputs, inputs standardised by the unit square."""
    torch.manual_seed(seed)
    return fk.MLP(
        2,
        outputs,
        width,
        depth,
        "tanh",
        input_shift=[0.5, 0.5],
        input_scale=[1 / math.sqrt(12)] * 2,
        dtype=dtype,
        device=device,
    )


def flux_terms(pts: PoissonPoints) -> list:
    """The flux form as fluxkern terms: objective div q + f, constraints q - grad u and u."""
    x, y = fk.inputs("x y")
    u, qx, qy = fk.outputs("u qx qy")
    fd = fk.data("f")
    return [
        fk.Objective("pde", qx.d(x) + qy.d(y) + fd, pts.xi, data={"f": pts.f}),
        fk.Constraint("flux", [qx - u.d(x), qy - u.d(y)], pts.xi),
        fk.Constraint("bc", u, pts.xb),
    ]


def _al(r: Tensor, c1: Tensor, c2: Tensor, cb: Tensor, lam_flux: Tensor, lam_bc: Tensor) -> Tensor:
    """mean r^2 + mean(lam_flux . (c1^2, c2^2)) + mean(lam_bc c_b^2): fluxkern's loss of the terms
    above with the rmsprop rule (squared pointwise constraints, means)."""
    loss = (r * r).mean() + (lam_flux[:, 0] * c1 * c1 + lam_flux[:, 1] * c2 * c2).mean()
    return loss + (lam_bc[:, 0] * cb * cb).mean()


def flux_al_loss_autograd(
    seq: nn.Module, pts: PoissonPoints, lam_flux: Tensor, lam_bc: Tensor
) -> Tensor:
    """The augmented-Lagrangian flux loss with torch.autograd.grad(create_graph=True)."""
    xr = pts.xi.detach().requires_grad_(True)
    out = seq(xr)  # [N, 3]
    u, qx, qy = out[:, 0], out[:, 1], out[:, 2]
    (du,) = torch.autograd.grad(u.sum(), xr, create_graph=True)  # [N, 2]
    (dqx,) = torch.autograd.grad(qx.sum(), xr, create_graph=True)
    (dqy,) = torch.autograd.grad(qy.sum(), xr, create_graph=True)
    r = dqx[:, 0] + dqy[:, 1] + pts.f
    return _al(r, qx - du[:, 0], qy - du[:, 1], seq(pts.xb)[:, 0], lam_flux, lam_bc)


def flux_al_loss_func(
    seq: nn.Module,
    params: dict[str, Tensor],
    pts: PoissonPoints,
    lam_flux: Tensor,
    lam_bc: Tensor,
) -> Tensor:
    """The same loss with torch.func: values by functional_call, J [N, 3, 2] by vmap(jacfwd)."""

    def single(p: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(seq, p, (x,))

    out = functional_call(seq, params, (pts.xi,))  # [N, 3]
    jac = vmap(jacfwd(single, argnums=1), in_dims=(None, 0))(params, pts.xi)  # [N, 3, 2]
    r = jac[:, 1, 0] + jac[:, 2, 1] + pts.f
    c1, c2 = out[:, 1] - jac[:, 0, 0], out[:, 2] - jac[:, 0, 1]
    cb = functional_call(seq, params, (pts.xb,))[:, 0]
    return _al(r, c1, c2, cb, lam_flux, lam_bc)


def flux_penalty_loss_autograd(seq: nn.Module, pts: PoissonPoints) -> Tensor:
    """Flux form with plain penalties, each residual's mean square (DeepXDE's loss of it)."""
    xr = pts.xi.detach().requires_grad_(True)
    out = seq(xr)
    u, qx, qy = out[:, 0], out[:, 1], out[:, 2]
    (du,) = torch.autograd.grad(u.sum(), xr, create_graph=True)
    (dqx,) = torch.autograd.grad(qx.sum(), xr, create_graph=True)
    (dqy,) = torch.autograd.grad(qy.sum(), xr, create_graph=True)
    r = dqx[:, 0] + dqy[:, 1] + pts.f
    parts = [r, qx - du[:, 0], qy - du[:, 1], seq(pts.xb)[:, 0]]
    return sum((p * p).mean() for p in parts)


def pinn_loss_autograd(seq: nn.Module, pts: PoissonPoints) -> Tensor:
    """Second-order PINN loss as users write it: mean (lap u + f)^2 + mean u_b^2."""
    xr = pts.xi.detach().requires_grad_(True)
    u = seq(xr)[:, 0]
    (du,) = torch.autograd.grad(u.sum(), xr, create_graph=True)  # [N, 2]
    (u_xx,) = torch.autograd.grad(du[:, 0].sum(), xr, create_graph=True)
    (u_yy,) = torch.autograd.grad(du[:, 1].sum(), xr, create_graph=True)
    r = u_xx[:, 0] + u_yy[:, 1] + pts.f
    ub = seq(pts.xb)[:, 0]
    return (r * r).mean() + (ub * ub).mean()
