"""convection_diffusion: v u_x + alpha u_xx = 0 on [0, 1], v = 1, alpha = 1e-6 (PROBLEMS.md).

u(0) = 1/2, u(1) = -1/2; the exact solution has a boundary layer of width ~alpha / v at x = 0:
u = exp(-v x / alpha) / (1 - exp(-v / alpha)) - 1/2 (exactly so up to exp(-v / alpha), which is
0 in float64 at Pe = 1e6). Flux form: outputs (u, sigma) with
sigma = -alpha u_x; objective v u_x - sigma_x; constraints sigma + alpha u_x and the two end
values. Points: a uniform grid of 2048 points (both ends included) and the 2 end points.
"""

from __future__ import annotations

import math

import torch

import fluxkern as fk
from fluxkern.geometry import Interval, grid
from fluxkern.problems.base import EvalGrid, Problem
from fluxkern.problems.declared import method_defaults, reference_run
from fluxkern.problems.pinn import grad, penalty_loss

__all__ = ["ConvectionDiffusion"]

U_LEFT, U_RIGHT = 0.5, -0.5


class ConvectionDiffusion(Problem):
    name = "convection_diffusion"
    summary = "v u_x + alpha u_xx = 0 on [0,1], Pe = v / alpha = 1e6, u(0) = 1/2, u(1) = -1/2"
    input_names = ("x",)
    output_names = ("u", "sigma")
    pinn_output_names = ("u",)
    error_fields = ("u", "sigma")
    vel = 1.0  # v (an instance may override vel and alpha, e.g. for a quick test)
    alpha = 1e-6
    width = 20
    depth = 4
    defaults = method_defaults(5000, eta=1e-2, eps=1e-10, n_interior=2048)
    reference = reference_run(
        {"u": 3.1e-5},
        5000,
        "reference code on a CPU; a saved model of it gives 1.7e-4",
        wall_time_s=15 * 60.0,
    )

    @property
    def domain(self) -> Interval:
        return Interval(0.0, 1.0)

    def _points(self, dtype, device):
        dom = self.domain
        kw = {"dtype": dtype, "device": device}
        xi = grid(dom, self.defaults["n_interior"], **kw)  # uniform, both ends included
        x0, _ = dom.sample_face("left", 1, **kw)
        x1, _ = dom.sample_face("right", 1, **kw)
        return xi, torch.cat([x0, x1])

    def flux_terms(self, seed, dtype, device):
        xi, xb = self._points(dtype, device)
        x = fk.inputs("x")
        u, sigma = fk.outputs("u sigma")
        g = fk.data("g")
        gb = torch.tensor([U_LEFT, U_RIGHT], dtype=dtype, device=device)
        return [
            fk.Objective("pde", self.vel * u.d(x) - sigma.d(x), xi, reduction="sum"),
            fk.Constraint("flux", sigma + self.alpha * u.d(x), xi, reduction="sum"),
            fk.Constraint("boundary", u - g, xb, data={"g": gb}, reduction="sum"),
        ]

    def pinn_loss(self, model, seed, dtype, device):
        xi, xb = self._points(dtype, device)
        gb = torch.tensor([U_LEFT, U_RIGHT], dtype=dtype, device=device)

        def loss():
            xv = xi.detach().requires_grad_(True)
            u_x = grad(model(xv)[:, 0], xv)[:, 0]
            u_xx = grad(u_x, xv)[:, 0]
            r = self.vel * u_x + self.alpha * u_xx
            return penalty_loss([r], [model(xb)[:, 0] - gb])

        return loss

    def exact(self, x):
        xs = x[:, 0]
        # (e - E) / (1 - E) - 1/2 with E = exp(-v / alpha) meets both end values exactly; for
        # alpha = 1e-6, E = 0 in float64 and this is PROBLEMS.md's formula.
        e = torch.exp(-self.vel * xs / self.alpha)
        big_e = math.exp(-self.vel / self.alpha)
        denom = -math.expm1(-self.vel / self.alpha)  # 1 - E
        return {"u": (e - big_e) / denom - 0.5, "sigma": self.vel * e / denom}

    def eval_grid(self, dtype, device):
        return EvalGrid(grid(self.domain, 128, dtype=dtype, device=device), (128,))
