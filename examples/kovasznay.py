"""kovasznay: steady Navier-Stokes, Kovasznay flow at Re = 20 on [-0.5, 1] x [-0.5, 1.5].

Exact (Kovasznay 1948), with l = Re/2 - sqrt(Re^2/4 + 4 pi^2):
u = 1 - exp(l x) cos(2 pi y), v = l / (2 pi) exp(l x) sin(2 pi y), p = (1 - exp(2 l x)) / 2.
Velocity from the exact solution on the whole boundary, pressure on the outflow x = 1.

Flux form (first order), velocity-vorticity-pressure: outputs (u, v, p, omega) with
omega = v_x - u_y; for a divergence-free field Laplace(u, v) = (-omega_y, omega_x), so
- objective (interior):   u u_x + v u_y + p_x + omega_y / Re,  u v_x + v v_y + p_y - omega_x / Re
- constraints (interior): u_x + v_y, omega - (v_x - u_y)
- constraints: (u, v) = exact on the boundary, p = exact on x = 1

    fluxkern solve examples/kovasznay.py
"""

import math

import torch

import fluxkern as fk

RE = 20.0
LAM = RE / 2 - math.sqrt(RE**2 / 4 + 4 * math.pi**2)
TWO_PI = 2 * math.pi

x, y = fk.inputs("x y")
u, v, p, w = fk.outputs("u v p omega")
gu, gv, gp = fk.data("gu gv gp")


def exact(pts):
    xs, ys = pts[:, 0], pts[:, 1]
    e = torch.exp(LAM * xs)
    c, s = torch.cos(TWO_PI * ys), torch.sin(TWO_PI * ys)
    v_x = LAM**2 / TWO_PI * e * s
    u_y = TWO_PI * e * s
    return {
        "u": 1 - e * c,
        "v": LAM / TWO_PI * e * s,
        "p": 0.5 * (1 - e * e),
        "omega": v_x - u_y,
    }


def terms(pts):
    xi, xb, xo = pts["interior"], pts["boundary"], pts["outflow"]
    ex = exact(xb)
    return [
        fk.Objective(
            "momentum",
            [
                u * u.d(x) + v * u.d(y) + p.d(x) + w.d(y) / RE,
                u * v.d(x) + v * v.d(y) + p.d(y) - w.d(x) / RE,
            ],
            xi,
        ),
        fk.Constraint("continuity", u.d(x) + v.d(y), xi),
        fk.Constraint("vorticity", w - (v.d(x) - u.d(y)), xi),
        fk.Constraint("wall", [u - gu, v - gv], xb, data={"gu": ex["u"], "gv": ex["v"]}),
        fk.Constraint("outflow", p - gp, xo, data={"gp": exact(xo)["p"]}),
    ]


problem = fk.problem(
    name="kovasznay",
    summary="steady Navier-Stokes, Kovasznay flow, Re 20, [-0.5,1] x [-0.5,1.5]",
    inputs="x y",
    outputs="u v p omega",
    domain=fk.geometry.Rectangle([-0.5, -0.5], [1.0, 1.5]),
    points={
        "interior": fk.Sample("interior", 2601),
        "boundary": fk.Sample("boundary", 400),
        "outflow": fk.Sample("right", 64),
    },
    terms=terms,
    exact=exact,
    error_fields=("u", "v", "p"),
    width=50,
    depth=4,
)
