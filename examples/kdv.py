"""kdv: the Korteweg-de Vries equation u_t + 6 u u_x + u_xxx = 0 (third order), one soliton.

x in [-8, 8], t in [0, 4]. Exact: u = (c / 2) sech^2(sqrt(c) / 2 (x - c t - x0)), c = 2,
x0 = -4 (a soliton of height 1 travelling from x = -4 to x = 4). Conditions from the exact
solution: u(x, 0), u at both ends and u_x at the right end (three for a third-order equation).

Flux form (first order): two auxiliary outputs, v = u_x and w = v_x (= u_xx).
- objective (interior):   u_t + 6 u v + w_x
- constraints (interior): v - u_x, w - v_x
- constraints: u = g on both ends, v = g_x on the right end, u = g at t = 0

    fluxkern solve examples/kdv.py
"""

import math

import torch

import fluxkern as fk

C = 2.0  # speed (and twice the height)
X0 = -4.0  # position at t = 0

x, t = fk.inputs("x t")
u, v, w = fk.outputs("u v w")
g = fk.data("g")


def exact(p):
    a = math.sqrt(C) / 2
    s = a * (p[:, 0] - C * p[:, 1] - X0)
    sech2 = 1.0 / torch.cosh(s) ** 2
    th = torch.tanh(s)
    return {
        "u": C / 2 * sech2,
        "v": -C * a * sech2 * th,  # u_x
        "w": C * a * a * sech2 * (2 - 3 * sech2),  # u_xx
    }


def terms(pts):
    xi, xl, xr, x0 = pts["interior"], pts["left"], pts["right"], pts["initial"]
    ends = torch.cat([xl, xr])
    return [
        fk.Objective("pde", u.d(t) + 6 * u * v + w.d(x), xi),
        fk.Constraint("aux", [v - u.d(x), w - v.d(x)], xi),
        fk.Constraint("ends", u - g, ends, data={"g": exact(ends)["u"]}),
        fk.Constraint("slope", v - g, xr, data={"g": exact(xr)["v"]}),
        fk.Constraint("initial", u - g, x0, data={"g": exact(x0)["u"]}),
    ]


problem = fk.problem(
    name="kdv",
    summary="u_t + 6 u u_x + u_xxx = 0, one soliton (c = 2), x in [-8,8], t in [0,4]",
    inputs="x t",
    outputs="u v w",
    domain=fk.geometry.TimeProduct(fk.geometry.Interval(-8.0, 8.0), 0.0, 4.0),
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
