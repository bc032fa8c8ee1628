"""heat2d: u_t = div(k grad u) + f on [0, 1]^2 x [0, 1] with a multi-scale coefficient.

k(x, y) = 1 + 0.5 sin(4 pi x) sin(4 pi y) (between 0.5 and 1.5, four cells per axis).
Manufactured exact solution u = exp(-t) (sin(pi x) sin(pi y) + 0.1 sin(4 pi x) sin(4 pi y));
f = u_t - div(k grad u) is computed from it by autograd (source()). u = 0 on the boundary,
u(x, y, 0) from the exact solution.

Flux form (first order): outputs (u, q1, q2) with q = -k grad u.
- objective (interior):   u_t + q1_x + q2_y - f
- constraints (interior): q1 + k u_x, q2 + k u_y
- constraints: u = 0 on the boundary, u = g at t = 0

    fluxkern solve examples/heat2d.py
"""

import math

import torch

import fluxkern as fk

PI = math.pi

x, y, t = fk.inputs("x y t")
u, q1, q2 = fk.outputs("u q1 q2")
f, k, g = fk.data("f k g")


def conductivity(p):
    return 1.0 + 0.5 * torch.sin(4 * PI * p[:, 0]) * torch.sin(4 * PI * p[:, 1])


def solution(p):
    xs, ys, ts = p[:, 0], p[:, 1], p[:, 2]
    s = torch.sin
    return torch.exp(-ts) * (s(PI * xs) * s(PI * ys) + 0.1 * s(4 * PI * xs) * s(4 * PI * ys))


def exact(p):
    """u and q = -k grad u (gradient by autograd)."""
    with torch.enable_grad():
        pv = p.detach().requires_grad_(True)
        uu = solution(pv)
        (du,) = torch.autograd.grad(uu.sum(), pv)
    kk = conductivity(p)
    return {"u": uu.detach(), "q1": -kk * du[:, 0], "q2": -kk * du[:, 1]}


def source(p):
    """f = u_t - div(k grad u) of the exact solution, by autograd."""
    with torch.enable_grad():
        pv = p.detach().requires_grad_(True)
        (du,) = torch.autograd.grad(solution(pv).sum(), pv, create_graph=True)
        kk = conductivity(pv)
        div = sum(
            torch.autograd.grad((kk * du[:, j]).sum(), pv, retain_graph=True)[0][:, j]
            for j in range(2)
        )
        return (du[:, 2] - div).detach()


def terms(pts):
    xi, xb, x0 = pts["interior"], pts["boundary"], pts["initial"]
    return [
        fk.Objective("pde", u.d(t) + q1.d(x) + q2.d(y) - f, xi, data={"f": source(xi)}),
        fk.Constraint("flux", [q1 + k * u.d(x), q2 + k * u.d(y)], xi, data={"k": conductivity(xi)}),
        fk.Constraint("wall", u, xb),
        fk.Constraint("initial", u - g, x0, data={"g": solution(x0)}),
    ]


problem = fk.problem(
    name="heat2d",
    summary="u_t = div(k grad u) + f, k = 1 + 0.5 sin(4 pi x) sin(4 pi y), manufactured u",
    inputs="x y t",
    outputs="u q1 q2",
    domain=fk.geometry.TimeProduct(fk.geometry.Rectangle([0.0, 0.0], [1.0, 1.0]), 0.0, 1.0),
    points={
        "interior": fk.Sample("interior", 4096),
        "boundary": fk.Sample("boundary", 1024),
        "initial": fk.Sample("initial", 1024),
    },
    terms=terms,
    exact=exact,
    eval_grid=(41, 41, 11),
    error_fields=("u",),
    width=32,
    depth=4,
)
