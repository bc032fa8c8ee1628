"""composite_heat: u_t = d/dx(k u_x) + f with a jump in k at x = 0 (PROBLEMS.md).

x in [-1, 1], t in [0, 2]; k = 1 for x < 0 and k = 3 pi for x >= 0. Flux form: outputs (u, sigma)
with sigma = k u_x; objective u_t - sigma_x - f; constraints sigma - k u_x (interior), Dirichlet
conditions at x = -1 and x = 1, and the initial condition at t = 0. Declared with
:func:`fluxkern.problem` (this file is also a problem file for `fluxkern solve`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

import fluxkern as fk
from fluxkern.blocks import Block
from fluxkern.geometry import Interval, TimeProduct
from fluxkern.optim.by_name import SCALE_FREE
from fluxkern.problems.declared import method_defaults, reference_run
from fluxkern.problems.declared import problem as declare
from fluxkern.problems.pinn import grad, penalty_loss
from fluxkern.problems.points import Points, Sample

__all__ = ["conductivity", "exact", "problem", "source"]

K_RIGHT = 3.0 * math.pi  # k for x >= 0 (k = 1 for x < 0)
W = 3.0 * math.pi  # wave number of the left solution


def conductivity(x: Tensor) -> Tensor:
    """k at points [N, 2]: 1 for x < 0, 3 pi for x >= 0."""
    xs = x[:, 0]
    return torch.where(xs < 0, torch.ones_like(xs), torch.full_like(xs, K_RIGHT))


def source(x: Tensor) -> Tensor:
    xs, t = x[:, 0], x[:, 1]
    left = (1.0 + W * W * t) * torch.sin(W * xs)
    return torch.where(xs < 0, left, xs)


def exact(x: Tensor) -> dict[str, Tensor]:
    xs, t = x[:, 0], x[:, 1]
    left = xs < 0
    u = torch.where(left, t * torch.sin(W * xs), t * xs)
    sigma = torch.where(left, W * t * torch.cos(W * xs), K_RIGHT * t)
    return {"u": u, "sigma": sigma}


def terms(pts: Points) -> list[Block]:
    xi, xl, xr, x0 = pts["interior"], pts["left"], pts["right"], pts["initial"]
    x, t = fk.inputs("x t")
    u, sigma = fk.outputs("u sigma")
    f, k, g = fk.data("f k g")
    ic_form = pts.options.get("ic_form", "signed")
    return [
        fk.Objective("pde", u.d(t) - sigma.d(x) - f, xi, data={"f": source(xi)}, reduction="sum"),
        fk.Constraint(
            "flux", sigma - k * u.d(x), xi, data={"k": conductivity(xi)}, reduction="sum"
        ),
        fk.Constraint("left", u - g, xl, data={"g": exact(xl)["u"]}, reduction="sum"),
        fk.Constraint("right", u - g, xr, data={"g": exact(xr)["u"]}, reduction="sum"),
        fk.Constraint(
            "initial", u - g, x0, data={"g": exact(x0)["u"]}, form=ic_form, reduction="sum"
        ),
    ]


def pinn_loss(model: nn.Module, pts: Points) -> Callable[[], Tensor]:
    xi, xl, xr, x0 = pts["interior"], pts["left"], pts["right"], pts["initial"]
    f, k = source(xi), conductivity(xi)
    gl, gr, g0 = exact(xl)["u"], exact(xr)["u"], exact(x0)["u"]

    def loss() -> Tensor:
        xv = xi.detach().requires_grad_(True)
        u = model(xv)[:, 0]
        du = grad(u, xv)
        u_xx = grad(du[:, 0], xv)[:, 0]
        # k is piecewise constant, so (k u_x)_x = k u_xx away from the interface
        r = du[:, 1] - k * u_xx - f
        conds = [model(xl)[:, 0] - gl, model(xr)[:, 0] - gr, model(x0)[:, 0] - g0]
        return penalty_loss([r], conds)

    return loss


# The setup of the committed result (results/composite_heat/flux, docs/results.md): ssbroyden
# with the scale-free tests, the squared initial condition (ssbroyden diverges with the signed
# one) and four times the points; the method's own settings stay in the defaults' other keys.
BEST_KNOWN = {
    "optimizer": "ssbroyden",
    "optimizer_options": dict(SCALE_FREE),
    "points": {"n_interior": 8112, "n_side": 1024, "n_initial": 1024},
    "problem_options": {"ic_form": "squared"},
}

problem = declare(
    name="composite_heat",
    summary="u_t = (k u_x)_x + f, k = 1 | 3 pi across x = 0, x in [-1,1], t in [0,2]",
    inputs="x t",
    outputs="u sigma",
    domain=TimeProduct(Interval(-1.0, 1.0), 0.0, 2.0),
    points={
        "interior": Sample("interior", "n_interior"),
        "left": Sample("left", "n_side"),
        "right": Sample("right", "n_side"),
        "initial": Sample("initial", "n_initial"),
    },
    terms=terms,
    exact=exact,
    eval_grid=(100, 100),
    width=20,
    depth=4,
    # The reference code used the signed error u - u_ic for the initial condition (and the
    # squared error for every other constraint); ic_form "squared" is the alternative, needed
    # with ssbroyden (a signed constraint leaves the Lagrangian unbounded below within an epoch).
    # With 4x the points and ic_form "squared" ssbroyden reaches u 5.7e-4 / sigma 2.2e-4 in
    # 15 min (README, results/composite_heat); with these points it over-fits from u ~5e-3.
    defaults={
        **method_defaults(10000, n_interior=2028, n_side=512, n_initial=512, ic_form="signed"),
        **BEST_KNOWN,
    },
    reference=reference_run(
        {"u": 4.2e-3, "sigma": 1.5e-3},
        10000,
        "reference code on a CPU; signed error for the initial condition",
        wall_time_s=63 * 60.0,
    ),
    pinn_outputs="u",
    pinn_loss=pinn_loss,
)
