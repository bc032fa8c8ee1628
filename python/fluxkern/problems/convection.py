"""convection: u_t + beta u_x = 0, beta = 40, periodic in x on [0, 2 pi], t in [0, 1] (PROBLEMS.md).

u(x, 0) = sin x; exact u = sin(x - beta t). The PDE is first order already, so the flux form has
the one output u: objective u_t + beta u_x, constraints u(0, t) - u(2 pi, t) on paired points
and u(x, 0) - sin x. The PINN form is the same residual with plain penalties.
"""

from __future__ import annotations

import math

import torch

import fluxkern as fk
from fluxkern.geometry import Interval, TimeProduct, grid, periodic_pairs
from fluxkern.problems.base import EvalGrid, Problem
from fluxkern.problems.declared import method_defaults, reference_run
from fluxkern.problems.pinn import grad, penalty_loss

__all__ = ["Convection"]


class Convection(Problem):
    name = "convection"
    summary = "u_t + 40 u_x = 0, periodic, u(x,0) = sin x, x in [0,2pi], t in [0,1]"
    input_names = ("x", "t")
    output_names = ("u",)
    pinn_output_names = ("u",)
    error_fields = ("u",)
    beta = 40.0  # wave speed (an instance may override it, e.g. for a quick test)
    width = 50
    depth = 4
    defaults = method_defaults(10000, n_interior=2048, n_pairs=512, n_initial=512)
    reference = reference_run(
        {"u": 8.5e-5},
        10000,
        "reference code on a CPU; ordinary relative L2 of its saved model (PROBLEMS.md); "
        "it printed the matrix 2-norm, 5.8e-5",
        wall_time_s=21 * 60.0,
    )

    @property
    def domain(self) -> TimeProduct:
        return TimeProduct(Interval(0.0, 2.0 * math.pi), 0.0, 1.0)

    def _points(self, seed, dtype, device):
        dom, o = self.domain, self.defaults
        kw = {"dtype": dtype, "device": device}
        xi = dom.sample_interior(o["n_interior"], seed=seed, **kw)
        xa, xb = periodic_pairs(dom, 0, o["n_pairs"], seed=seed + 1, **kw)
        x0 = dom.sample_initial(o["n_initial"], seed=seed + 2, **kw)
        return xi, (xa, xb), x0

    def flux_terms(self, seed, dtype, device):
        xi, pairs, x0 = self._points(seed, dtype, device)
        x, t = fk.inputs("x t")
        u = fk.outputs("u")
        g = fk.data("g")
        return [
            fk.Objective("pde", u.d(t) + self.beta * u.d(x), xi, reduction="sum"),
            fk.Constraint("periodic", u, pairs, reduction="sum"),  # u(0, t) - u(2 pi, t)
            fk.Constraint("initial", u - g, x0, data={"g": self.exact(x0)["u"]}, reduction="sum"),
        ]

    def pinn_loss(self, model, seed, dtype, device):
        xi, (xa, xb), x0 = self._points(seed, dtype, device)
        g0 = self.exact(x0)["u"]

        def loss():
            xv = xi.detach().requires_grad_(True)
            du = grad(model(xv)[:, 0], xv)
            r = du[:, 1] + self.beta * du[:, 0]
            conds = [model(xa)[:, 0] - model(xb)[:, 0], model(x0)[:, 0] - g0]
            return penalty_loss([r], conds)

        return loss

    def exact(self, x):
        return {"u": torch.sin(x[:, 0] - self.beta * x[:, 1])}

    def eval_grid(self, dtype, device):
        pts = grid(self.domain, (256, 256), endpoint=(False, True), dtype=dtype, device=device)
        return EvalGrid(pts, (256, 256))
