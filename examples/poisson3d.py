"""poisson3d: -Laplace(u) = f on the unit cube [0, 1]^3, u = 0 on the boundary.

Exact solution u = sin(pi x) sin(2 pi y) sin(pi z), so f = 6 pi^2 u.

Flux form (first order): outputs (u, q1, q2, q3) with q = grad u.
- objective (interior):   q1_x + q2_y + q3_z + f
- constraints (interior): q1 - u_x, q2 - u_y, q3 - u_z
- constraint (boundary):  u

    fluxkern solve examples/poisson3d.py
"""

import math

import torch

import fluxkern as fk

x, y, z = fk.inputs("x y z")
u, q1, q2, q3 = fk.outputs("u q1 q2 q3")
f = fk.data("f")

PI = math.pi


def exact(p):
    s = torch.sin
    c = torch.cos
    X, Y, Z = PI * p[:, 0], 2 * PI * p[:, 1], PI * p[:, 2]
    return {
        "u": s(X) * s(Y) * s(Z),
        "q1": PI * c(X) * s(Y) * s(Z),
        "q2": 2 * PI * s(X) * c(Y) * s(Z),
        "q3": PI * s(X) * s(Y) * c(Z),
    }


def source(p):
    return 6 * PI**2 * exact(p)["u"]


def terms(pts):
    xi, xb = pts["interior"], pts["boundary"]
    return [
        fk.Objective("pde", q1.d(x) + q2.d(y) + q3.d(z) + f, xi, data={"f": source(xi)}),
        fk.Constraint("flux", [q1 - u.d(x), q2 - u.d(y), q3 - u.d(z)], xi),
        fk.Constraint("wall", u, xb),
    ]


problem = fk.problem(
    name="poisson3d",
    summary="-lap u = f on the unit cube, u = sin(pi x) sin(2 pi y) sin(pi z)",
    inputs="x y z",
    outputs="u q1 q2 q3",
    domain=fk.geometry.Box([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
    points={"interior": fk.Sample("interior", 4096), "boundary": fk.Sample("boundary", 1536)},
    terms=terms,
    exact=exact,
    eval_grid=(21, 21, 21),
    error_fields=("u",),
    width=32,
    depth=4,
)
