"""allen_cahn: the Allen-Cahn equation u_t = d u_xx + 5 (u - u^3), d = 1e-4, periodic.

x in [-1, 1] (periodic), t in [0, 1], u(x, 0) = x^2 cos(pi x): the classic benchmark (Raissi et
al.'s AC data set), whose solution forms sharp interfaces of width ~ sqrt(d) ~ 0.01 that then
stay put. There is no closed form; the reference is computed here by a Fourier pseudo-spectral
method with ETDRK4 time stepping (Kassam & Trefethen 2005): reference_solution(), 2048 modes,
dt = 1e-3, about a second of numpy, computed once per process when first needed. Measured
2026-12-07: dt = 1e-4 changes it by < 3e-10; doubling the modes by 9.6e-5 at most and 5.8e-7
in relative L2 (the periodic extension of u0 has a kink at x = +-1, so the modes converge
algebraically, not spectrally). tests/test_examples.py checks its PDE residual.

Flux form (first order) with a scaled conservative flux: outputs (u, q) with q = e u_x,
e = sqrt(d) = 0.01, so that q stays O(1) across the interfaces (u_x ~ 1/e there):
- objective (interior):   u_t - e q_x - 5 (u - u^3)
- constraints (interior): q - e u_x
- constraints: u and q periodic in x (paired points); u = x^2 cos(pi x) at t = 0

    fluxkern solve examples/allen_cahn.py
"""

import functools
import math

import numpy as np
import torch

import fluxkern as fk

D = 1e-4
EPS = math.sqrt(D)
T_END = 1.0
NX_EVAL, NT_EVAL = 256, 201  # evaluation grid: x = -1 + 2k/256 (periodic), t = linspace(0, 1, 201)

x, t = fk.inputs("x t")
u, q = fk.outputs("u q")
g = fk.data("g")


def initial(xs):
    return xs**2 * torch.cos(math.pi * xs)


def etdrk4(n_modes=2048, dt=1e-3, t_end=T_END, n_out=NT_EVAL, d=D):
    """u on x_j = -1 + 2 j / n_modes at n_out equally spaced times in [0, t_end].

    Fourier pseudo-spectral in x, ETDRK4 in t (Kassam & Trefethen 2005, the contour-integral
    evaluation of the phi functions): u_t = L u + N(u), L = 5 - d k^2, N(u) = -5 u^3.
    """
    xs = -1.0 + 2.0 * np.arange(n_modes) / n_modes
    k = np.pi * np.fft.fftfreq(n_modes, d=1.0 / n_modes)  # wave numbers of the period 2 box
    lin = 5.0 - d * k**2
    e, e2 = np.exp(dt * lin), np.exp(dt * lin / 2)
    m = 32
    r = np.exp(1j * np.pi * (np.arange(1, m + 1) - 0.5) / m)
    lr = dt * lin[:, None] + r[None, :]
    qq = dt * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=1))
    f1 = dt * np.real(np.mean((-4 - lr + np.exp(lr) * (4 - 3 * lr + lr**2)) / lr**3, axis=1))
    f2 = dt * np.real(np.mean((2 + lr + np.exp(lr) * (-2 + lr)) / lr**3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * lr - lr**2 + np.exp(lr) * (4 - lr)) / lr**3, axis=1))

    def nonlin(vh):
        uu = np.fft.ifft(vh).real
        return -5.0 * np.fft.fft(uu**3)

    v = np.fft.fft(xs**2 * np.cos(np.pi * xs))
    steps = int(round(t_end / dt))
    every = steps // (n_out - 1)
    if every * (n_out - 1) != steps:
        raise ValueError("t_end / dt must be a multiple of n_out - 1")
    out = [np.fft.ifft(v).real]
    for i in range(1, steps + 1):
        nv = nonlin(v)
        a = e2 * v + qq * nv
        na = nonlin(a)
        b = e2 * v + qq * na
        nb = nonlin(b)
        c = e2 * a + qq * (2 * nb - nv)
        nc = nonlin(c)
        v = e * v + nv * f1 + 2 * (na + nb) * f2 + nc * f3
        if i % every == 0:
            out.append(np.fft.ifft(v).real)
    return xs, np.linspace(0.0, t_end, n_out), np.stack(out)  # [n_out, n_modes]


@functools.lru_cache(maxsize=1)
def reference_solution():
    """(x [2048], t [201], u [201, 2048]) of the reference run."""
    return etdrk4()


def exact(p):
    """The reference u at points (x, t): spectral interpolation in x, linear in t (exact at
    the evaluation grid, whose times are the reference's output times)."""
    xr, tr, ur = reference_solution()
    pn = p.detach().cpu().double().numpy()
    xs, ts = pn[:, 0], pn[:, 1]
    pos = np.clip(ts / (tr[1] - tr[0]), 0, len(tr) - 1)
    i0 = np.minimum(np.floor(pos).astype(int), len(tr) - 2)
    frac = pos - i0
    n = len(xr)
    j = (xs + 1.0) * n / 2.0
    on_grid = np.abs(j - np.round(j)) < 1e-9
    vals = np.empty(len(xs))
    jj = np.round(j[on_grid]).astype(int) % n
    vals[on_grid] = (1 - frac[on_grid]) * ur[i0[on_grid], jj] + frac[on_grid] * ur[
        i0[on_grid] + 1, jj
    ]
    off = ~on_grid
    if off.any():  # trigonometric interpolation between the grid points
        k = np.pi * np.fft.fftfreq(n, d=1.0 / n)
        coef = np.fft.fft(ur, axis=1) / n  # [nt, n]
        basis = np.exp(1j * np.outer(xs[off] + 1.0, k))  # [m, n]
        a = np.real(np.sum(basis * coef[i0[off]], axis=1))
        b = np.real(np.sum(basis * coef[i0[off] + 1], axis=1))
        vals[off] = (1 - frac[off]) * a + frac[off] * b
    return {"u": torch.as_tensor(vals, dtype=p.dtype, device=p.device)}


def eval_grid(dtype, device):
    pts = fk.geometry.grid(
        DOMAIN, (NX_EVAL, NT_EVAL), endpoint=(False, True), dtype=dtype, device=device
    )
    return fk.problems.EvalGrid(pts, (NX_EVAL, NT_EVAL))


def terms(pts):
    xi, pairs, x0 = pts["interior"], pts["periodic"], pts["initial"]
    return [
        fk.Objective("pde", u.d(t) - EPS * q.d(x) - 5 * (u - u * u * u), xi),
        fk.Constraint("flux", q - EPS * u.d(x), xi),
        fk.Constraint("periodic", [u, q], pairs),
        fk.Constraint("initial", u - g, x0, data={"g": initial(x0[:, 0])}),
    ]


DOMAIN = fk.geometry.TimeProduct(fk.geometry.Interval(-1.0, 1.0), 0.0, T_END)

problem = fk.problem(
    name="allen_cahn",
    summary="u_t = 1e-4 u_xx + 5 (u - u^3), periodic, u0 = x^2 cos(pi x), ETDRK4 reference",
    inputs="x t",
    outputs="u q",
    domain=DOMAIN,
    points={
        "interior": fk.Sample("interior", 4096),
        "periodic": fk.Sample("pairs", 256, axis=0),
        "initial": fk.Sample("initial", 512),
    },
    terms=terms,
    exact=exact,
    eval_grid=eval_grid,
    error_fields=("u",),
    width=32,
    depth=4,
)
