"""wave: the 1-D wave equation u_tt = c^2 u_xx, c = 2, x in [0, 1], t in [0, 1].

u = 0 at x = 0 and x = 1; u(x, 0) = sin(pi x) + 0.5 sin(3 pi x), u_t(x, 0) = 0.
Exact (d'Alembert, standing waves): u = sin(pi x) cos(2 pi t) + 0.5 sin(3 pi x) cos(6 pi t).

Flux form (first order): outputs (u, v, w) with v = u_t and w = c u_x.
- objective (interior):   v_t - c w_x
- constraints (interior): v - u_t, w - c u_x
- constraints: u = 0 on both ends; u = u0 and v = 0 at t = 0

    fluxkern solve examples/wave.py
"""

import math

import torch

import fluxkern as fk

C = 2.0  # wave speed
PI = math.pi

x, t = fk.inputs("x t")
u, v, w = fk.outputs("u v w")
g = fk.data("g")


def exact(p):
    xs, ts = p[:, 0], p[:, 1]
    s1, s3 = torch.sin(PI * xs), torch.sin(3 * PI * xs)
    c1, c3 = torch.cos(PI * xs), torch.cos(3 * PI * xs)
    w1, w3 = PI * C, 3 * PI * C  # angular frequencies
    return {
        "u": s1 * torch.cos(w1 * ts) + 0.5 * s3 * torch.cos(w3 * ts),
        "v": -w1 * s1 * torch.sin(w1 * ts) - 0.5 * w3 * s3 * torch.sin(w3 * ts),
        "w": C * (PI * c1 * torch.cos(w1 * ts) + 1.5 * PI * c3 * torch.cos(w3 * ts)),
    }


def terms(pts):
    xi, x0 = pts["interior"], pts["initial"]
    ends = torch.cat([pts["left"], pts["right"]])
    return [
        fk.Objective("pde", v.d(t) - C * w.d(x), xi),
        fk.Constraint("flux", [v - u.d(t), w - C * u.d(x)], xi),
        fk.Constraint("ends", u, ends),
        fk.Constraint("initial", [u - g, v], x0, data={"g": exact(x0)["u"]}),
    ]


problem = fk.problem(
    name="wave",
    summary="u_tt = 4 u_xx on [0,1] x [0,1], two standing modes",
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
