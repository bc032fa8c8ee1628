"""cavity: steady lid-driven cavity flow at Re = 100 on [0, 1]^2 (PROBLEMS.md).

Steady incompressible Navier-Stokes in velocity-vorticity-pressure form. Outputs (u, v, p, omega);
objective (u u_x + v u_y + p_x + omega_y / Re)^2 + (u v_x + v v_y + p_y - omega_x / Re)^2;
constraints u_x + v_y and omega - (v_x - u_y) at interior points, (u, v) = (1, 0) on the lid
y = 1, no slip on the other walls, and p(0, 0) = 0.

There is no exact solution. The run is validated against the published Re = 100 centreline
profiles of Ghia, Ghia & Shin (1982): u(0.5, y) and v(x, 0.5) (see extra_results). Declared
with :func:`fluxkern.problem`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

import fluxkern as fk
from fluxkern.blocks import Block
from fluxkern.geometry import Rectangle
from fluxkern.optim.by_name import SCALE_FREE
from fluxkern.problems.base import relative_l2
from fluxkern.problems.declared import method_defaults, reference_run
from fluxkern.problems.declared import problem as declare
from fluxkern.problems.pinn import grad, penalty_loss
from fluxkern.problems.points import Points, Sample

__all__ = [
    "GHIA_RE100_U",
    "GHIA_RE100_V",
    "centreline_comparison",
    "extra_results",
    "ghia_points",
    "problem",
]

RE = 100.0
WALLS = ("left", "right", "bottom")  # no slip; the lid is the top face

GHIA_REFERENCE = (
    "U. Ghia, K. N. Ghia and C. T. Shin, High-Re solutions for incompressible flow using the "
    "Navier-Stokes equations and a multigrid method, J. Comput. Phys. 48 (1982) 387-411; "
    "Re = 100, Table I (u on the vertical centreline x = 0.5) and Table II (v on the horizontal "
    "centreline y = 0.5)"
)

# Ghia, Ghia & Shin (1982), Table I, Re = 100: (y, u(0.5, y)), 17 points, y descending.
GHIA_RE100_U: tuple[tuple[float, float], ...] = (
    (1.0000, 1.00000),
    (0.9766, 0.84123),
    (0.9688, 0.78871),
    (0.9609, 0.73722),
    (0.9531, 0.68717),
    (0.8516, 0.23151),
    (0.7344, 0.00332),
    (0.6172, -0.13641),
    (0.5000, -0.20581),
    (0.4531, -0.21090),
    (0.2813, -0.15662),
    (0.1719, -0.10150),
    (0.1016, -0.06434),
    (0.0703, -0.04775),
    (0.0625, -0.04192),
    (0.0547, -0.03717),
    (0.0000, 0.00000),
)

# Ghia, Ghia & Shin (1982), Table II, Re = 100: (x, v(x, 0.5)), 17 points, x descending.
GHIA_RE100_V: tuple[tuple[float, float], ...] = (
    (1.0000, 0.00000),
    (0.9688, -0.05906),
    (0.9609, -0.07391),
    (0.9531, -0.08864),
    (0.9453, -0.10313),
    (0.9063, -0.16914),
    (0.8594, -0.22445),
    (0.8047, -0.24533),
    (0.5000, 0.05454),
    (0.2344, 0.17527),
    (0.2266, 0.17507),
    (0.1563, 0.16077),
    (0.0938, 0.12317),
    (0.0781, 0.10890),
    (0.0703, 0.10091),
    (0.0625, 0.09233),
    (0.0000, 0.00000),
)


Predict = Callable[[Tensor], dict[str, Tensor]]


def terms(pts: Points) -> list[Block]:
    xi, lid, corner = pts["interior"], pts["lid"], pts["corner"]
    walls = torch.cat([pts[f] for f in WALLS])
    x, y = fk.inputs("x y")
    u, v, p, w = fk.outputs("u v p omega")
    return [
        fk.Objective(
            "momentum",
            [
                u * u.d(x) + v * u.d(y) + p.d(x) + w.d(y) / RE,
                u * v.d(x) + v * v.d(y) + p.d(y) - w.d(x) / RE,
            ],
            xi,
            reduction="sum",
        ),
        fk.Constraint("continuity", u.d(x) + v.d(y), xi, reduction="sum"),
        fk.Constraint("vorticity", w - (v.d(x) - u.d(y)), xi, reduction="sum"),
        fk.Constraint("lid", [u - 1.0, v], lid, reduction="sum"),
        fk.Constraint("walls", [u, v], walls, reduction="sum"),
        fk.Constraint("pressure", p, corner, reduction="sum"),
    ]


def pinn_loss(model: nn.Module, pts: Points) -> Callable[[], Tensor]:
    xi, lid, corner = pts["interior"], pts["lid"], pts["corner"]
    walls = torch.cat([pts[f] for f in WALLS])

    def loss() -> Tensor:
        xv = xi.detach().requires_grad_(True)
        out = model(xv)
        u, v = out[:, 0], out[:, 1]
        du, dv, dp = grad(u, xv), grad(v, xv), grad(out[:, 2], xv)
        lap_u = sum(grad(du[:, j], xv)[:, j] for j in range(2))
        lap_v = sum(grad(dv[:, j], xv)[:, j] for j in range(2))
        res = [
            u * du[:, 0] + v * du[:, 1] + dp[:, 0] - lap_u / RE,
            u * dv[:, 0] + v * dv[:, 1] + dp[:, 1] - lap_v / RE,
            du[:, 0] + dv[:, 1],
        ]
        yl, yw, yc = model(lid), model(walls), model(corner)
        return penalty_loss(res, [yl[:, 0] - 1.0, yl[:, 1], yw[:, 0], yw[:, 1], yc[:, 2]])

    return loss


def ghia_points(
    dtype: torch.dtype = torch.float64, device: Any = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Ghia's centreline points and values: (xu [17, 2], u [17], xv [17, 2], v [17])."""
    tu = torch.tensor(GHIA_RE100_U, dtype=torch.float64)
    tv = torch.tensor(GHIA_RE100_V, dtype=torch.float64)
    xu = torch.stack([torch.full_like(tu[:, 0], 0.5), tu[:, 0]], 1)
    xv = torch.stack([tv[:, 0], torch.full_like(tv[:, 0], 0.5)], 1)
    kw = {"dtype": dtype, "device": device}
    return xu.to(**kw), tu[:, 1].to(**kw), xv.to(**kw), tv[:, 1].to(**kw)


def centreline_comparison(
    predict: Predict, dtype: torch.dtype = torch.float64, device: Any = None
) -> dict[str, Any]:
    """Predicted centreline profiles against Ghia et al. (1982) at their 17 + 17 points.

    Args:
        predict: The trained network's fields at points [N, 2], by name (u and v are used).
        dtype: The dtype of the points handed to predict (the network's).
        device: Their device (default CPU).

    Returns:
        Per profile the points, Ghia's and the predicted values, the largest absolute
        deviation and the relative L2 deviation; and the largest deviation of both.
    """
    xu, u_ref, xv, v_ref = ghia_points()  # float64 CPU: the table as typed
    u = predict(xu.to(dtype=dtype, device=device))["u"].detach().double().cpu()
    v = predict(xv.to(dtype=dtype, device=device))["v"].detach().double().cpu()
    du = float((u - u_ref).abs().max())
    dv = float((v - v_ref).abs().max())
    return {
        "reference": GHIA_REFERENCE,
        "u_centreline": {
            "y": xu[:, 1].tolist(),
            "ghia": u_ref.tolist(),
            "predicted": u.tolist(),
            "max_abs_deviation": du,
            "relative_l2": relative_l2(u, u_ref),
        },
        "v_centreline": {
            "x": xv[:, 0].tolist(),
            "ghia": v_ref.tolist(),
            "predicted": v.tolist(),
            "max_abs_deviation": dv,
            "relative_l2": relative_l2(v, v_ref),
        },
        "max_centreline_deviation": max(du, dv),
    }


def extra_results(predict: Predict, dtype: torch.dtype, device: torch.device) -> dict[str, Any]:
    """The centreline comparison, and its largest deviation on its own (results.json)."""
    comp = centreline_comparison(predict, dtype, device)
    return {
        "validation": comp,
        "max_centreline_deviation": comp["max_centreline_deviation"],
    }


# The setup of the committed result (results/cavity/flux, docs/results.md): ssbroyden with the
# scale-free tests on four times the interior points and four times the wall points.
BEST_KNOWN = {
    "optimizer": "ssbroyden",
    "optimizer_options": dict(SCALE_FREE),
    "points": {"n_interior": 10000, "n_face": 512},
}

problem = declare(
    name="cavity",
    summary="steady lid-driven cavity, Navier-Stokes at Re 100 on [0,1]^2 (vs Ghia et al. 1982)",
    inputs="x y",
    outputs="u v p omega",
    domain=Rectangle([0.0, 0.0], [1.0, 1.0]),
    # the k-th set is drawn with seed + k: the interior, the walls face by face, the lid
    points={
        "interior": Sample("interior", "n_interior"),
        **{f: Sample(f, "n_face") for f in WALLS},
        "lid": Sample("top", "n_face"),
        "corner": torch.zeros(1, 2),  # p(0, 0) = 0
    },
    terms=terms,
    error_fields=(),  # no exact solution: see extra_results
    eval_grid=(101, 101),
    width=20,
    depth=6,
    # The reference's points. They limit the accuracy: the reference code, fluxkern's L-BFGS and
    # ssbroyden all level off 0.022-0.028 (u) from Ghia's centreline; with n_interior 10000 and
    # n_face 512 ssbroyden reaches 0.0088 / 0.0051 (u / v) in 10 min (README, results/cavity).
    defaults={**method_defaults(20000, eta=1e-2, n_interior=2500, n_face=128), **BEST_KNOWN},
    reference=reference_run(
        {},
        20000,
        "reference code on a CPU; compared with published centreline data only",
        wall_time_s=(3 * 60 + 40) * 60.0,
    ),
    pinn_outputs="u v p",
    pinn_loss=pinn_loss,
    extra_results=extra_results,
)
