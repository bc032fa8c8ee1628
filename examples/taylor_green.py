"""taylor_green: unsteady Navier-Stokes, the decaying Taylor-Green vortex, nu = 0.1.

(x, y) in [0, 2 pi]^2, t in [0, 1]. Exact, with F = exp(-2 nu t):
u = -cos x sin y F, v = sin x cos y F, p = -(cos 2x + cos 2y) F^2 / 4.
Velocity from the exact solution on the boundary and at t = 0. The pressure is fixed only up to
a function of time by these conditions, so the error is reported for u and v.

Flux form (first order), velocity-vorticity-pressure: outputs (u, v, p, omega),
omega = v_x - u_y, and Laplace(u, v) = (-omega_y, omega_x) for a divergence-free field:
- objective (interior):   u_t + u u_x + v u_y + p_x + nu omega_y,
                          v_t + u v_x + v v_y + p_y - nu omega_x
- constraints (interior): u_x + v_y, omega - (v_x - u_y)
- constraints: (u, v) = exact on the boundary and at t = 0

    fluxkern solve examples/taylor_green.py
"""

import math

import torch

import fluxkern as fk

NU = 0.1
TWO_PI = 2 * math.pi

x, y, t = fk.inputs("x y t")
u, v, p, w = fk.outputs("u v p omega")
gu, gv = fk.data("gu gv")


def exact(pts):
    xs, ys, ts = pts[:, 0], pts[:, 1], pts[:, 2]
    F = torch.exp(-2 * NU * ts)
    return {
        "u": -torch.cos(xs) * torch.sin(ys) * F,
        "v": torch.sin(xs) * torch.cos(ys) * F,
        "p": -0.25 * (torch.cos(2 * xs) + torch.cos(2 * ys)) * F * F,
        "omega": 2 * torch.cos(xs) * torch.cos(ys) * F,
    }


def terms(pts):
    xi, xb, x0 = pts["interior"], pts["boundary"], pts["initial"]
    eb, e0 = exact(xb), exact(x0)
    return [
        fk.Objective(
            "momentum",
            [
                u.d(t) + u * u.d(x) + v * u.d(y) + p.d(x) + NU * w.d(y),
                v.d(t) + u * v.d(x) + v * v.d(y) + p.d(y) - NU * w.d(x),
            ],
            xi,
        ),
        fk.Constraint("continuity", u.d(x) + v.d(y), xi),
        fk.Constraint("vorticity", w - (v.d(x) - u.d(y)), xi),
        fk.Constraint("wall", [u - gu, v - gv], xb, data={"gu": eb["u"], "gv": eb["v"]}),
        fk.Constraint("initial", [u - gu, v - gv], x0, data={"gu": e0["u"], "gv": e0["v"]}),
    ]


problem = fk.problem(
    name="taylor_green",
    summary="unsteady Navier-Stokes, Taylor-Green vortex, nu 0.1, [0,2pi]^2 x [0,1]",
    inputs="x y t",
    outputs="u v p omega",
    domain=fk.geometry.TimeProduct(fk.geometry.Rectangle([0.0, 0.0], [TWO_PI, TWO_PI]), 0.0, 1.0),
    points={
        "interior": fk.Sample("interior", 4096),
        "boundary": fk.Sample("boundary", 1024),
        "initial": fk.Sample("initial", 1024),
    },
    terms=terms,
    exact=exact,
    eval_grid=(41, 41, 11),
    error_fields=("u", "v"),
    width=50,
    depth=4,
)
