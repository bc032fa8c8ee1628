"""poisson (the demo): -lap u = f on [0,1]^2, u = sin(pi x) sin(pi y), u = 0 on the boundary."""

from __future__ import annotations

import math

import torch
from torch import Tensor

import fluxkern as fk
from fluxkern.geometry import Rectangle, grid
from fluxkern.problems.base import EvalGrid, Problem
from fluxkern.problems.pinn import laplacian, penalty_loss

__all__ = ["Poisson"]


class Poisson(Problem):
    name = "poisson"
    summary = "-lap u = 2 pi^2 sin(pi x) sin(pi y) on [0,1]^2, u = 0 on the boundary (demo)"
    input_names = ("x", "y")
    output_names = ("u", "q1", "q2")
    pinn_output_names = ("u",)
    error_fields = ("u", "q1", "q2")
    width = 20
    depth = 3
    defaults = {
        "epochs": 300,
        "optimizer": "lbfgs",
        "dtype": "float64",
        "dual": "rmsprop",
        "dual_options": {"eta": 1.0, "eps": 1e-8},
        "n_interior": 1024,
        "n_boundary": 256,
    }
    reference = {
        "errors": {},
        "wall_time_s": None,
        "epochs": None,
        "note": "the demo; no reference run",
    }

    @property
    def domain(self) -> Rectangle:
        return Rectangle([0.0, 0.0], [1.0, 1.0])

    def _points(self, seed, dtype, device):
        n_i, n_b = self.defaults["n_interior"], self.defaults["n_boundary"]
        xi = self.domain.sample_interior(n_i, seed=seed, dtype=dtype, device=device)
        xb, _ = self.domain.sample_boundary(n_b, seed=seed + 1, dtype=dtype, device=device)
        return xi, xb

    @staticmethod
    def source(x: Tensor) -> Tensor:
        return 2 * math.pi**2 * torch.sin(math.pi * x[:, 0]) * torch.sin(math.pi * x[:, 1])

    def flux_terms(self, seed, dtype, device):
        xi, xb = self._points(seed, dtype, device)
        x, y = fk.inputs("x y")
        u, q1, q2 = fk.outputs("u q1 q2")
        f = fk.data("f")
        return [
            fk.Objective("pde", q1.d(x) + q2.d(y) + f, xi, data={"f": self.source(xi)}),
            fk.Constraint("flux", [q1 - u.d(x), q2 - u.d(y)], xi),
            fk.Constraint("boundary", u, xb),
        ]

    def pinn_loss(self, model, seed, dtype, device):
        xi, xb = self._points(seed, dtype, device)
        f = self.source(xi)

        def loss():
            xr = xi.detach().requires_grad_(True)
            u = model(xr)[:, 0]
            r = laplacian(u, xr) + f
            return penalty_loss([r], [model(xb)[:, 0]])

        return loss

    def exact(self, x):
        s, c = torch.sin(math.pi * x), torch.cos(math.pi * x)
        return {
            "u": s[:, 0] * s[:, 1],
            "q1": math.pi * c[:, 0] * s[:, 1],
            "q2": math.pi * s[:, 0] * c[:, 1],
        }

    def eval_grid(self, dtype, device):
        return EvalGrid(grid(self.domain, (101, 101), dtype=dtype, device=device), (101, 101))
