"""poisson (the demo): -lap u = f on [0,1]^2, u = sin(pi x) sin(pi y), u = 0 on the boundary.

Declared with :func:`fluxkern.problem` (this file is also a problem file for `fluxkern solve`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

import fluxkern as fk
from fluxkern.blocks import Block
from fluxkern.geometry import Rectangle
from fluxkern.problems.declared import method_defaults, reference_run
from fluxkern.problems.declared import problem as declare
from fluxkern.problems.pinn import laplacian, penalty_loss
from fluxkern.problems.points import Points, Sample

__all__ = ["exact", "problem", "source"]


def source(x: Tensor) -> Tensor:
    return 2 * math.pi**2 * torch.sin(math.pi * x[:, 0]) * torch.sin(math.pi * x[:, 1])


def exact(x: Tensor) -> dict[str, Tensor]:
    s, c = torch.sin(math.pi * x), torch.cos(math.pi * x)
    return {
        "u": s[:, 0] * s[:, 1],
        "q1": math.pi * c[:, 0] * s[:, 1],
        "q2": math.pi * s[:, 0] * c[:, 1],
    }


def terms(pts: Points) -> list[Block]:
    xi, xb = pts["interior"], pts["boundary"]
    x, y = fk.inputs("x y")
    u, q1, q2 = fk.outputs("u q1 q2")
    f = fk.data("f")
    return [
        fk.Objective("pde", q1.d(x) + q2.d(y) + f, xi, data={"f": source(xi)}),
        fk.Constraint("flux", [q1 - u.d(x), q2 - u.d(y)], xi),
        fk.Constraint("boundary", u, xb),
    ]


def pinn_loss(model: torch.nn.Module, pts: Points) -> Callable[[], Tensor]:
    xi, xb = pts["interior"], pts["boundary"]
    f = source(xi)

    def loss() -> Tensor:
        xr = xi.detach().requires_grad_(True)
        r = laplacian(model(xr)[:, 0], xr) + f
        return penalty_loss([r], [model(xb)[:, 0]])

    return loss


problem = declare(
    name="poisson",
    summary="-lap u = 2 pi^2 sin(pi x) sin(pi y) on [0,1]^2, u = 0 on the boundary (demo)",
    inputs="x y",
    outputs="u q1 q2",
    domain=Rectangle([0.0, 0.0], [1.0, 1.0]),
    points={
        "interior": Sample("interior", "n_interior"),
        "boundary": Sample("boundary", "n_boundary"),
    },
    terms=terms,
    exact=exact,
    eval_grid=(101, 101),
    width=20,
    depth=3,
    defaults=method_defaults(300, n_interior=1024, n_boundary=256),
    reference=reference_run({}, None, "the demo; no reference run"),
    pinn_outputs="u",
    pinn_loss=pinn_loss,
)
