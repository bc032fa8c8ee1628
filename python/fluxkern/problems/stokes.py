"""stokes: -nu lap u + grad p = f, div u = 0 on [0, 1]^2, velocity-vorticity-pressure form.

nu = 1 (PROBLEMS.md). Exact: u = h(x) g'(y), v = -h'(x) g(y) with h(s) = g(s) = s^2 (1 - s)^2
(so div u = 0), p = x^2 - y^2, omega = v_x - u_y. Flux form: outputs (u, v, p, omega);
objective (p_x + omega_y - f_x)^2 + (p_y - omega_x - f_y)^2 (for a divergence-free field
-lap u = (omega_y, -omega_x)); constraints u_x + v_y and omega - (v_x - u_y) at interior points,
u = v = 0 on the left, right and bottom faces, and u = 0, p = x^2 - 1 on the top face.
Declared with :func:`fluxkern.problem`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

import fluxkern as fk
from fluxkern.blocks import Block
from fluxkern.geometry import Rectangle
from fluxkern.optim.by_name import SCALE_FREE
from fluxkern.problems.declared import method_defaults, reference_run
from fluxkern.problems.declared import problem as declare
from fluxkern.problems.pinn import grad, penalty_loss
from fluxkern.problems.points import Points, Sample

__all__ = ["exact", "problem", "source"]

NU = 1.0
WALLS = ("left", "right", "bottom")  # u = v = 0; the top face has u = 0 and p given


def _h(s: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """h(s) = s^2 (1 - s)^2 and its first three derivatives."""
    return (
        s * s * (1 - s) ** 2,
        2 * s - 6 * s * s + 4 * s**3,
        2 - 12 * s + 12 * s * s,
        -12 + 24 * s,
    )


def source(x: Tensor) -> tuple[Tensor, Tensor]:
    """f = -nu lap u + grad p of the exact solution, written out: (f_x, f_y)."""
    hx, hx1, hx2, hx3 = _h(x[:, 0])
    gy, gy1, gy2, gy3 = _h(x[:, 1])
    # u = hx gy1: lap u = hx2 gy1 + hx gy3;  v = -hx1 gy: lap v = -(hx3 gy + hx1 gy2)
    fx = -NU * (hx2 * gy1 + hx * gy3) + 2 * x[:, 0]
    fy = NU * (hx3 * gy + hx1 * gy2) - 2 * x[:, 1]
    return fx, fy


def exact(x: Tensor) -> dict[str, Tensor]:
    """u, v, p and omega = v_x - u_y of the manufactured solution at points x [N, 2]."""
    hx, hx1, hx2, _ = _h(x[:, 0])
    gy, gy1, gy2, _ = _h(x[:, 1])
    # omega = v_x - u_y = -hx2 gy - hx gy2
    return {
        "u": hx * gy1,
        "v": -hx1 * gy,
        "p": x[:, 0] ** 2 - x[:, 1] ** 2,
        "omega": -hx2 * gy - hx * gy2,
    }


def terms(pts: Points) -> list[Block]:
    xi, walls, top = pts["interior"], torch.cat([pts[f] for f in WALLS]), pts["top"]
    x, y = fk.inputs("x y")
    u, v, p, w = fk.outputs("u v p omega")
    fx, fy, pb = fk.data("fx fy pb")
    f_x, f_y = source(xi)
    return [
        fk.Objective(
            "momentum",
            [p.d(x) + NU * w.d(y) - fx, p.d(y) - NU * w.d(x) - fy],
            xi,
            data={"fx": f_x, "fy": f_y},
            reduction="sum",
        ),
        fk.Constraint("continuity", u.d(x) + v.d(y), xi, reduction="sum"),
        fk.Constraint("vorticity", w - (v.d(x) - u.d(y)), xi, reduction="sum"),
        fk.Constraint("walls", [u, v], walls, reduction="sum"),
        fk.Constraint("top", [u, p - pb], top, data={"pb": exact(top)["p"]}, reduction="sum"),
    ]


def pinn_loss(model: nn.Module, pts: Points) -> Callable[[], Tensor]:
    xi, walls, top = pts["interior"], torch.cat([pts[f] for f in WALLS]), pts["top"]
    f_x, f_y = source(xi)
    pb = exact(top)["p"]

    def loss() -> Tensor:
        xv = xi.detach().requires_grad_(True)
        out = model(xv)
        u, v, p = out[:, 0], out[:, 1], out[:, 2]
        du, dv, dp = grad(u, xv), grad(v, xv), grad(p, xv)
        lap_u = sum(grad(du[:, j], xv)[:, j] for j in range(2))
        lap_v = sum(grad(dv[:, j], xv)[:, j] for j in range(2))
        res = [
            -NU * lap_u + dp[:, 0] - f_x,
            -NU * lap_v + dp[:, 1] - f_y,
            du[:, 0] + dv[:, 1],
        ]
        yw, yt = model(walls), model(top)
        return penalty_loss(res, [yw[:, 0], yw[:, 1], yt[:, 0], yt[:, 2] - pb])

    return loss


# The setup of the committed result (results/stokes/flux, docs/results.md): the method's L-BFGS
# for 1200 epochs, then ssbroyden with the scale-free tests.
BEST_KNOWN = {
    "optimizer": "lbfgs",
    "then_optimizer": "ssbroyden",
    "switch_epoch": 1200,
    "then_optimizer_options": dict(SCALE_FREE),
}

problem = declare(
    name="stokes",
    summary="Stokes flow on [0,1]^2 in velocity-vorticity-pressure form, manufactured solution",
    inputs="x y",
    outputs="u v p omega",
    domain=Rectangle([0.0, 0.0], [1.0, 1.0]),
    # the k-th set is drawn with seed + k: the interior, the walls face by face, the top
    points={
        "interior": Sample("interior", "n_interior"),
        **{f: Sample(f, "n_face") for f in (*WALLS, "top")},
    },
    terms=terms,
    exact=exact,
    eval_grid=(64, 64),
    width=50,
    depth=4,
    defaults={**method_defaults(10000, n_interior=2048, n_face=512), **BEST_KNOWN},
    reference=reference_run(
        {"u": 2.6e-3, "v": 1.8e-3, "p": 7.6e-4, "omega": 4.4e-3},
        10000,
        "reference code on a CPU; ordinary relative L2 of its saved model (PROBLEMS.md); "
        "it printed the matrix 2-norm: u 2.2e-3, v 1.2e-3, p 1.0e-3, omega 4.1e-3",
    ),
    pinn_outputs="u v p",
    pinn_loss=pinn_loss,
)
