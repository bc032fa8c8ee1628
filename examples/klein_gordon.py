"""klein_gordon: the nonlinear Klein-Gordon equation u_tt - u_xx + u^3 = f, x, t in [0, 1].

Manufactured exact solution u = x cos(5 pi t) + (x t)^3 (Wang, Teng & Perdikaris 2021), so
f = u_tt - u_xx + u^3 with u_tt = -25 pi^2 x cos(5 pi t) + 6 x^3 t and u_xx = 6 x t^3.
Conditions from the exact solution: u(0, t), u(1, t), u(x, 0) = x and u_t(x, 0) = 0.

Flux form (first order): outputs (u, v, w) with v = u_t and w = u_x.
- objective (interior):   v_t - w_x + u^3 - f
- constraints (interior): v - u_t, w - u_x
- constraints: u = g on both ends; u = g and v = 0 at t = 0

    fluxkern solve examples/klein_gordon.py
"""

import math

import torch

import fluxkern as fk

PI = math.pi

x, t = fk.inputs("x t")
u, v, w = fk.outputs("u v w")
f, g = fk.data("f g")


def exact(p):
    xs, ts = p[:, 0], p[:, 1]
    return {
        "u": xs * torch.cos(5 * PI * ts) + (xs * ts) ** 3,
        "v": -5 * PI * xs * torch.sin(5 * PI * ts) + 3 * xs**3 * ts**2,
        "w": torch.cos(5 * PI * ts) + 3 * xs**2 * ts**3,
    }


def source(p):
    xs, ts = p[:, 0], p[:, 1]
    u_tt = -25 * PI**2 * xs * torch.cos(5 * PI * ts) + 6 * xs**3 * ts
    u_xx = 6 * xs * ts**3
    return u_tt - u_xx + exact(p)["u"] ** 3


def terms(pts):
    xi, x0 = pts["interior"], pts["initial"]
    ends = torch.cat([pts["left"], pts["right"]])
    return [
        fk.Objective("pde", v.d(t) - w.d(x) + u * u * u - f, xi, data={"f": source(xi)}),
        fk.Constraint("flux", [v - u.d(t), w - u.d(x)], xi),
        fk.Constraint("ends", u - g, ends, data={"g": exact(ends)["u"]}),
        fk.Constraint("initial", [u - g, v], x0, data={"g": exact(x0)["u"]}),
    ]


problem = fk.problem(
    name="klein_gordon",
    summary="u_tt - u_xx + u^3 = f on [0,1]^2, u = x cos(5 pi t) + (x t)^3",
    inputs="x t",
    outputs="u v w",
    domain=fk.geometry.TimeProduct(fk.geometry.Interval(0.0, 1.0), 0.0, 1.0),
    points={
        "interior": fk.Sample("interior", 4096),
        "left": fk.Sample("left", 256),
        "right": fk.Sample("right", 256),
        "initial": fk.Sample("initial", 512),
    },
    terms=terms,
    exact=exact,
    error_fields=("u",),
    width=32,
    depth=4,
)
