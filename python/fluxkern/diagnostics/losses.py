"""The order 0, 1 and 2 losses on one flux-form network, and the flat parameter gradient.

order 0: mean squared error of u against the exact solution; order 1: the flux form's
augmented-Lagrangian loss (the fused op, or its torch twin under an output perturbation);
order 2: the PINN form's loss, reading the PINN outputs from the flux network.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from fluxkern.blocks import Constraint, Objective
from fluxkern.diagnostics.perturbation import OutputPerturbation
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.nn import MLP
from fluxkern.problems.base import Problem

__all__ = ["ORDERS", "ORDER_LOSSES"]

ORDERS = (0, 1, 2)
ORDER_LOSSES = {
    0: "mean squared error of u against the exact solution",
    1: "flux form: augmented Lagrangian with the initial multipliers",
    2: "PINN form: second-order residual, plain penalties",
}


class _Fields(nn.Module):
    """Exposes chosen output columns of a network (the PINN form's outputs of the flux network),
    plus an optional output perturbation eps * p(x) added to all of the network's outputs."""

    def __init__(self, model: nn.Module, cols: list[int]) -> None:
        super().__init__()
        self.model = model
        self.cols = cols
        self.perturbation: tuple[float, OutputPerturbation] | None = None

    def full(self, x: Tensor) -> Tensor:
        y = self.model(x)
        if self.perturbation is not None:
            eps, p = self.perturbation
            y = y + eps * p.value(x)
        return y

    def forward(self, x: Tensor) -> Tensor:
        return self.full(x)[:, self.cols]


def _al_torch(al: AugmentedLagrangian, model: MLP, pert: tuple[float, OutputPerturbation] | None):
    """The augmented-Lagrangian loss in torch on top of the fused jet, with an optional output
    perturbation (y, J) -> (y + eps p, J + eps dp/dx). Without one it equals al()."""
    total = None
    for b in al.bound.values():
        t = b.block
        y, jac = model.jet(b.x, backend=al.backend)
        if pert is not None:
            eps, p = pert
            y = y + eps * p.value(b.x)
            jac = jac + eps * p.jacobian(b.x)
        r = b.residuals_torch(y, jac)  # [N, R]
        kw = {"dtype": r.dtype, "device": r.device}
        if isinstance(t, Objective):
            lam = torch.full((t.n_res,), t.weight, **kw)
            mu = torch.zeros(t.n_res, **kw)
            c = r * r
        else:
            assert isinstance(t, Constraint)
            lam, mu = al.multipliers[t.name], al.penalties[t.name]
            c = r * r if t.form == "squared" else r
        red = 1.0 / t.n if t.reduction == "mean" and t.n else 1.0
        loss = red * (lam * c + 0.5 * mu * c * c).sum()
        total = loss if total is None else total + loss
    assert total is not None
    return total


class _Losses:
    """The order 0, 1 and 2 losses of a problem on one flux-form network and one point draw."""

    def __init__(
        self, problem: Problem, model: MLP, seed: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        outs = list(problem.output_names)
        missing = [n for n in problem.pinn_output_names if n not in outs]
        if missing:
            raise ValueError(
                f"{problem.name}: PINN outputs {missing} are not outputs of the flux form "
                f"{outs}; the three losses need one network"
            )
        self.model = model
        self.fields = _Fields(model, [outs.index(n) for n in problem.pinn_output_names])
        terms = problem.flux_terms(seed, dtype, device)
        opts = problem.defaults
        self.al = AugmentedLagrangian(
            model, terms, dual=opts.get("dual", "rmsprop"), **opts.get("dual_options", {})
        )
        self.pinn = problem.pinn_loss(self.fields, seed, dtype, device)
        # order 0: every distinct point of the flux form's blocks
        sets: list[Tensor] = []
        for b in self.al.bound.values():
            if not any(s.shape == b.x.shape and torch.equal(s, b.x) for s in sets):
                sets.append(b.x)
        self.x0 = torch.cat(sets)  # [P, d]
        name = problem.pinn_output_names[0]
        self.ucol = outs.index(name)
        self.u0 = problem.exact(self.x0)[name].to(dtype=dtype, device=device)  # [P]
        self.n_points = {n: int(b.block.n) for n, b in self.al.bound.items()}

    def loss(self, order: int, pert: tuple[float, OutputPerturbation] | None = None) -> Tensor:
        if order == 0:
            self.fields.perturbation = pert
            try:
                u = self.fields.full(self.x0)[:, self.ucol]
            finally:
                self.fields.perturbation = None
            return ((u - self.u0) ** 2).mean()
        if order == 1:
            return self.al() if pert is None else _al_torch(self.al, self.model, pert)
        if order == 2:
            self.fields.perturbation = pert
            try:
                return self.pinn()
            finally:
                self.fields.perturbation = None
        raise ValueError(f"order must be 0, 1 or 2, got {order!r}")


def _gradient(model: nn.Module, fn: Callable[[], Tensor]) -> tuple[Tensor, float]:
    """The flat parameter gradient [P] of fn() and its value."""
    model.zero_grad(set_to_none=True)
    loss = fn()
    loss.backward()
    grads = [
        (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
        for p in model.parameters()
    ]
    model.zero_grad(set_to_none=True)
    return torch.cat(grads).detach(), float(loss.detach())
