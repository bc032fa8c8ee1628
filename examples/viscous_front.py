"""viscous_front: viscous Burgers u_t + (u^2/2)_x = nu u_xx, nu = 0.01/pi: a front forms and moves.

x in [-1, 1] (periodic), t in [0, 1], u(x, 0) = 1/2 - sin(pi x). This is the classic Burgers
benchmark (u0 = -sin(pi x), whose front forms at x = 0 at t = 1/pi and stays there) seen from
a frame moving at speed -1/2: u(x, t) = 1/2 + v(x - t/2, t) with v the classic solution, so the
front forms at t = 1/pi and moves right at speed 1/2. u drops by 2 across it, as
1/2 - tanh((x - x_front) / (2 nu)): 2 nu ~ 0.006 wide, a fifth of the spacing of the 2560
interior points (~0.03).

Reference (no downloads): the Cole-Hopf solution of the classic problem by quadrature,

    v(x, t) = -E[sin(pi (x - eta))]
    with weights exp(-cos(pi (x - eta)) / (2 pi nu) - eta^2 / (4 nu t)),

with eta = sqrt(4 nu t) z, z on a uniform grid of 641 nodes over [-16, 16] (the trapezoid rule,
spectrally accurate for these smooth, Gaussian-decaying integrands; log-sum-exp against the
exp(50) range of the weights), and v_x = -pi E[cos] - Var[sin] / (2 nu). Measured 2026-12-07:
4001 nodes over [-35, 35] change u by < 1e-12 on the evaluation grid; tests/test_examples.py
checks the PDE residual of the reference.

Flux form (first order) with the total (conservative) flux F = u^2/2 - nu u_x as the output:
- objective (interior):   u_t + F_x
- constraints (interior): F - u^2/2 + nu u_x
- constraints: u and F periodic in x (paired points); u = 1/2 - sin(pi x) at t = 0
F is as smooth as u through the front (there F ~ s u + const), while u_x peaks at about
-1 / (2 nu) ~ -157. The same problem with the gradient as the flux output (q = u_x; objective
u_t + u q - nu q_x) is the attribute `gradient` of this file, for comparison:

    fluxkern solve examples/viscous_front.py
    fluxkern solve examples/viscous_front.py:gradient
"""

import math

import numpy as np
import torch

import fluxkern as fk

NU = 0.01 / math.pi
SPEED = 0.5  # the frame's speed: the front moves at it
T_END = 1.0
NX_EVAL, NT_EVAL = 256, 101  # evaluation grid: x = -1 + 2k/256 (periodic), t = linspace(0, 1, 101)
Z_MAX, Z_NODES = 16.0, 641  # the Cole-Hopf quadrature: eta = sqrt(4 nu t) z, z in [-Z, Z]
CHUNK = 2048  # points per block of the quadrature (memory: CHUNK x Z_NODES doubles)

x, t = fk.inputs("x t")
u, F = fk.outputs("u F")
ug, q = fk.outputs("u q")  # the gradient form's outputs
g = fk.data("g")


def initial(xs):
    return SPEED - torch.sin(math.pi * xs)


def classic(xs, ts, nu=NU, z_max=Z_MAX, nodes=Z_NODES):
    """The classic problem's v and v_x (u0 = -sin(pi x)) at numpy points xs, ts (Cole-Hopf)."""
    xs, ts = np.asarray(xs, np.float64), np.asarray(ts, np.float64)
    v, vx = np.empty_like(xs), np.empty_like(xs)
    z = np.linspace(-z_max, z_max, nodes)
    for lo in range(0, len(xs), CHUNK):
        xc, tc = xs[lo : lo + CHUNK, None], ts[lo : lo + CHUNK, None]
        eta = np.sqrt(4 * nu * np.maximum(tc, 0.0)) * z[None, :]
        y = np.pi * (xc - eta)
        logw = -np.cos(y) / (2 * np.pi * nu) - z[None, :] ** 2
        w = np.exp(logw - logw.max(1, keepdims=True))
        w /= w.sum(1, keepdims=True)
        s, c = np.sin(y), np.cos(y)
        ms = (w * s).sum(1)
        v[lo : lo + CHUNK] = -ms
        var = np.maximum((w * s * s).sum(1) - ms**2, 0.0)
        vx[lo : lo + CHUNK] = -np.pi * (w * c).sum(1) - var / (2 * nu)
    return v, vx


def solution(p):
    """u and u_x [N] at points p [N, 2] (float64 numpy inside)."""
    pn = p.detach().cpu().double().numpy()
    xs = np.mod(pn[:, 0] - SPEED * pn[:, 1] + 1.0, 2.0) - 1.0  # the classic frame, periodic
    v, vx = classic(xs, pn[:, 1])
    as_torch = {"dtype": p.dtype, "device": p.device}
    return torch.as_tensor(v + SPEED, **as_torch), torch.as_tensor(vx, **as_torch)


def exact(p):
    ue, ux = solution(p)
    return {"u": ue, "F": 0.5 * ue**2 - NU * ux}


def exact_gradient(p):
    ue, ux = solution(p)
    return {"u": ue, "q": ux}


def terms(pts):
    xi, pairs, x0 = pts["interior"], pts["periodic"], pts["initial"]
    return [
        fk.Objective("pde", u.d(t) + F.d(x), xi),  # u_t + F_x = 0
        fk.Constraint("flux", F - 0.5 * u * u + NU * u.d(x), xi),
        fk.Constraint("periodic", [u, F], pairs),
        fk.Constraint("initial", u - g, x0, data={"g": initial(x0[:, 0])}),
    ]


def gradient_terms(pts):
    xi, pairs, x0 = pts["interior"], pts["periodic"], pts["initial"]
    return [
        fk.Objective("pde", ug.d(t) + ug * q - NU * q.d(x), xi),  # u_t + u u_x - nu u_xx = 0
        fk.Constraint("flux", q - ug.d(x), xi),
        fk.Constraint("periodic", [ug, q], pairs),
        fk.Constraint("initial", ug - g, x0, data={"g": initial(x0[:, 0])}),
    ]


def eval_grid(dtype, device):
    pts = fk.geometry.grid(
        DOMAIN, (NX_EVAL, NT_EVAL), endpoint=(False, True), dtype=dtype, device=device
    )
    return fk.problems.EvalGrid(pts, (NX_EVAL, NT_EVAL))


DOMAIN = fk.geometry.TimeProduct(fk.geometry.Interval(-1.0, 1.0), 0.0, T_END)
POINTS = {
    "interior": fk.Sample("interior", 2560),
    "periodic": fk.Sample("pairs", 80, axis=0),
    "initial": fk.Sample("initial", 160),
}

problem = fk.problem(
    name="viscous_front",
    summary="u_t + (u^2/2)_x = nu u_xx, nu = 0.01/pi, periodic, a moving front; Cole-Hopf",
    inputs="x t",
    outputs="u F",
    domain=DOMAIN,
    points=POINTS,
    terms=terms,
    exact=exact,
    eval_grid=eval_grid,
    error_fields=("u",),
    width=32,
    depth=4,
)

gradient = fk.problem(
    name="viscous_front_gradient",
    summary="viscous_front with the gradient q = u_x as the flux output (for comparison)",
    inputs="x t",
    outputs="u q",
    domain=DOMAIN,
    points=POINTS,
    terms=gradient_terms,
    exact=exact_gradient,
    eval_grid=eval_grid,
    error_fields=("u",),
    width=32,
    depth=4,
)
