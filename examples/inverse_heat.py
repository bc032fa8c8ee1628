"""inverse_heat: the diffusivity kappa of u_t = kappa (u_xx + u_yy) from 50 noisy sensors.

On [0, 1]^2 x [0, 1], u = 0 on the walls, u(x, y, 0) = sin(pi x) sin(pi y); exact solution
u = exp(-2 kappa pi^2 t) sin(pi x) sin(pi y) with kappa = 0.1. The sensors
(examples/data/inverse_heat.csv, made by examples/inverse_data.py) hold u at 50 points with 1%
Gaussian noise. kappa starts at 1 (ten times the truth) and is kept positive.

Flux form: outputs (u, q1, q2) with q = grad u.
- objective (interior):   u_t - kappa (q1_x + q2_y)        (kappa: fluxkern.unknown)
- constraints (interior): q1 - u_x, q2 - u_y
- constraints: u = 0 on the walls, u = sin sin at t = 0, u = sensor values (observe, with a
  tolerance of 2.5 noise standard deviations: the multipliers do not chase the noise)

    fluxkern solve examples/inverse_heat.py       # results.json: "unknowns": kappa, its error
"""

import math
import os

import torch

import fluxkern as fk

KAPPA = 0.1  # the truth, for the error report only
HERE = os.path.dirname(os.path.abspath(__file__))
SENSORS, MEASURED = fk.read_observations(os.path.join(HERE, "data", "inverse_heat.csv"), "x y t")
# the noise level of the file: 1% of the RMS of the exact values (examples/inverse_data.py)
SIGMA = 0.01 * float(MEASURED["u"].square().mean().sqrt())
# how the sensors are enforced (fluxkern.observe): pointwise multipliers that stop growing once
# a sensor is fitted to within 2.5 sigma (docs/guide/inverse.md compares the alternatives)
OBSERVE = {"tolerance": 2.5 * SIGMA}

x, y, t = fk.inputs("x y t")
u, q1, q2 = fk.outputs("u q1 q2")
g = fk.data("g")
kappa = fk.unknown("kappa", init=1.0, positive=True, truth=KAPPA)


def exact(p):
    s = torch.sin(math.pi * p[:, 0]) * torch.sin(math.pi * p[:, 1])
    e = torch.exp(-2 * KAPPA * math.pi**2 * p[:, 2])
    return {
        "u": e * s,
        "q1": math.pi * e * torch.cos(math.pi * p[:, 0]) * torch.sin(math.pi * p[:, 1]),
        "q2": math.pi * e * torch.sin(math.pi * p[:, 0]) * torch.cos(math.pi * p[:, 1]),
    }


def terms(pts):
    xi, xb, x0 = pts["interior"], pts["walls"], pts["initial"]
    return [
        fk.Objective("pde", u.d(t) - kappa * (q1.d(x) + q2.d(y)), xi),
        fk.Constraint("flux", [q1 - u.d(x), q2 - u.d(y)], xi),
        fk.Constraint("walls", u, xb),
        fk.Constraint("initial", u - g, x0, data={"g": exact(x0)["u"]}),
        fk.observe("sensors", SENSORS, {u: MEASURED["u"]}, **OBSERVE),
    ]


problem = fk.problem(
    name="inverse_heat",
    summary="inverse: the diffusivity of a 2-D heat equation from 50 noisy sensors",
    inputs="x y t",
    outputs="u q1 q2",
    domain=fk.geometry.TimeProduct(fk.geometry.Rectangle([0.0, 0.0], [1.0, 1.0]), 0.0, 1.0),
    points={
        "interior": fk.Sample("interior", 2000),
        "walls": fk.Sample("boundary", 400),
        "initial": fk.Sample("initial", 400),
    },
    terms=terms,
    exact=exact,
    eval_grid=(21, 21, 11),
    error_fields=("u",),
    width=20,
    depth=3,
    defaults={"epochs": 300},
)
