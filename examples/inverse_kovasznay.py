"""inverse_kovasznay: the convection coefficient and the viscosity of a steady Navier-Stokes flow
from 100 noisy samples of velocity and pressure (Kovasznay flow, Re 20).

    c1 (u . grad) u + grad p = c2 Laplace u,  div u = 0   on [-0.5, 1] x [-0.5, 1.5]

with c1 = 1 and c2 = 1 / Re = 0.05 unknown (both start at 0.5). The samples
(examples/data/inverse_kovasznay.csv, made by examples/inverse_data.py) hold u, v and p at 100
points with 1% Gaussian noise; the velocity on the boundary is known. From velocity alone the
two are not identifiable: scaling c1, c2 and p by one factor leaves the equations unchanged, so
the pressure samples are needed.

Flux form (velocity-vorticity-pressure, as examples/kovasznay.py): outputs (u, v, p, omega),
omega = v_x - u_y, Laplace(u, v) = (-omega_y, omega_x) for a divergence-free field.
- objective (interior):   c1 (u u_x + v u_y) + p_x + c2 omega_y,
                          c1 (u v_x + v v_y) + p_y - c2 omega_x
- constraints (interior): u_x + v_y, omega - (v_x - u_y)
- constraints: (u, v) = exact on the boundary; the samples (observe, tolerance 2.5 sigma)

    fluxkern solve examples/inverse_kovasznay.py
"""

import math
import os

import torch

import fluxkern as fk

RE = 20.0
LAM = RE / 2 - math.sqrt(RE**2 / 4 + 4 * math.pi**2)
TWO_PI = 2 * math.pi
HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES, MEASURED = fk.read_observations(os.path.join(HERE, "data", "inverse_kovasznay.csv"), "x y")
# the noise of each field: 1% of the RMS of its exact values (examples/inverse_data.py)
SIGMA = {k: 0.01 * float(v.square().mean().sqrt()) for k, v in MEASURED.items()}

x, y = fk.inputs("x y")
u, v, p, w = fk.outputs("u v p omega")
gu, gv = fk.data("gu gv")
c1 = fk.unknown("c1", init=0.5, truth=1.0)
c2 = fk.unknown("c2", init=0.5, positive=True, truth=1.0 / RE)


def exact(pts):
    xs, ys = pts[:, 0], pts[:, 1]
    e = torch.exp(LAM * xs)
    c, s = torch.cos(TWO_PI * ys), torch.sin(TWO_PI * ys)
    return {
        "u": 1 - e * c,
        "v": LAM / TWO_PI * e * s,
        "p": 0.5 * (1 - e * e),
        "omega": LAM**2 / TWO_PI * e * s - TWO_PI * e * s,
    }


def terms(pts):
    xi, xb = pts["interior"], pts["boundary"]
    ex = exact(xb)
    return [
        fk.Objective(
            "momentum",
            [
                c1 * (u * u.d(x) + v * u.d(y)) + p.d(x) + c2 * w.d(y),
                c1 * (u * v.d(x) + v * v.d(y)) + p.d(y) - c2 * w.d(x),
            ],
            xi,
        ),
        fk.Constraint("continuity", u.d(x) + v.d(y), xi),
        fk.Constraint("vorticity", w - (v.d(x) - u.d(y)), xi),
        fk.Constraint("wall", [u - gu, v - gv], xb, data={"gu": ex["u"], "gv": ex["v"]}),
        fk.observe("u_samples", SAMPLES, {u: MEASURED["u"]}, tolerance=2.5 * SIGMA["u"]),
        fk.observe("v_samples", SAMPLES, {v: MEASURED["v"]}, tolerance=2.5 * SIGMA["v"]),
        fk.observe("p_samples", SAMPLES, {p: MEASURED["p"]}, tolerance=2.5 * SIGMA["p"]),
    ]


problem = fk.problem(
    name="inverse_kovasznay",
    summary="inverse: convection coefficient and viscosity of Kovasznay flow from 100 samples",
    inputs="x y",
    outputs="u v p omega",
    domain=fk.geometry.Rectangle([-0.5, -0.5], [1.0, 1.5]),
    points={"interior": fk.Sample("interior", 2000), "boundary": fk.Sample("boundary", 400)},
    terms=terms,
    exact=exact,
    error_fields=("u", "v", "p"),
    width=30,
    depth=3,
    defaults={"epochs": 300},
)
