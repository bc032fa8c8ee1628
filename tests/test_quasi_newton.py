"""fluxkern.optim.SSBFGS and SSBroyden (dense self-scaled quasi-Newton).

Oracles: an independent textbook BFGS (inverse form, Nocedal & Wright eq. 6.17 with the initial
scaling 6.20) written here and driven by the same line search, which the unscaled variant must
reproduce iterate by iterate; the known minimisers of a quadratic and of Rosenbrock's function.
"""

from __future__ import annotations

import copy

import pytest
import torch

from fluxkern.optim import SSBFGS, SSBroyden
from fluxkern.optim.lbfgs import _strong_wolfe_fn
from fluxkern.optim.quasi_newton import MAX_PARAMETERS
from matrix import TOL, rel_err

F64 = torch.float64
CLASSES = [SSBFGS, SSBroyden]


def _full_h(state) -> torch.Tensor:
    """H_scale times the symmetric matrix whose upper triangle state["H"] holds."""
    h = state["H"]
    return (torch.triu(h) + torch.triu(h, 1).T) * state["H_scale"]


def _quadratic(p: int = 30, seed: int = 0):
    """f(x) = 1/2 x.A x - b.x with SPD A (condition ~1e2); returns (x param, closure, x*)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(p, p, generator=g, dtype=F64))
    a = q @ torch.diag(torch.logspace(0, 2, p, dtype=F64)) @ q.T
    b = torch.randn(p, generator=g, dtype=F64)
    x = torch.nn.Parameter(torch.zeros(p, dtype=F64))

    def closure():
        x.grad = None
        f = 0.5 * x @ (a @ x) - b @ x
        f.backward()
        return f

    return x, closure, torch.linalg.solve(a, b)


def _rosenbrock(x0=(-1.2, 1.0)):
    x = torch.nn.Parameter(torch.tensor(x0, dtype=F64))

    def closure():
        x.grad = None
        f = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        f.backward()
        return f

    return x, closure


@pytest.mark.parametrize("cls", CLASSES)
def test_quadratic_converges_in_few_iterations(cls):
    x, closure, xstar = _quadratic()
    opt = cls([x], max_iter=100, tolerance_grad=1e-12, tolerance_change=0.0)
    opt.step(closure)
    # exact line searches would need <= P = 30 iterations; strong Wolfe ones a few more. The
    # run ends when the line search can no longer resolve loss changes (they are ~|g|^2, at
    # rounding level of f once |g| ~ 1e-7), so x is checked to 1e-6, where it measures ~3e-8.
    assert opt.state[x]["n_iter"] <= 60
    assert rel_err(x, xstar) < 1e-6


@pytest.mark.parametrize("cls", CLASSES)
def test_rosenbrock(cls):
    x, closure = _rosenbrock()
    opt = cls([x], max_iter=200, tolerance_grad=1e-10, tolerance_change=0.0)
    opt.step(closure)
    assert rel_err(x, torch.ones(2, dtype=F64)) < 1e-7
    assert opt.state[x]["n_iter"] < 200


def _textbook_bfgs(closure, x, iters):
    """BFGS, inverse form H+ = (I - rho s y^T) H (I - rho y s^T) + rho s s^T, H_0 = I and
    H_0 = (s.y / y.y) I before the first update; first step min(1, 1/|g|_1); same line search."""
    with torch.enable_grad():
        f = float(closure().detach())
    g = x.grad.clone()
    n = x.numel()
    hmat, updated = torch.eye(n, dtype=F64), False
    iterates = []
    for _ in range(iters):
        d = -(hmat @ g)
        t = 1.0 if updated else min(1.0, 1.0 / float(g.abs().sum()))
        x0 = [x.detach().clone()]

        def obj(xs, step, direction):
            with torch.no_grad():
                x.copy_(xs[0] + step * direction)
            with torch.enable_grad():
                val = float(closure().detach())
            grad = x.grad.clone()
            with torch.no_grad():
                x.copy_(xs[0])
            return val, grad

        f, g_new, t, _ = _strong_wolfe_fn()(obj, x0, t, d, f, g, float(g.dot(d)))
        with torch.no_grad():
            x.add_(t * d)
        s, y = t * d, g_new - g
        sy = float(s.dot(y))
        if sy > 1e-10:
            if not updated:
                hmat = hmat * (sy / float(y.dot(y)))
                updated = True
            rho = 1.0 / sy
            eye = torch.eye(n, dtype=F64)
            hmat = (eye - rho * torch.outer(s, y)) @ hmat @ (eye - rho * torch.outer(y, s))
            hmat = hmat + rho * torch.outer(s, s)
        g = g_new
        iterates.append(x.detach().clone())
    return iterates


@pytest.mark.parametrize("cls", CLASSES)
def test_unscaled_matches_textbook_bfgs(cls):
    x, closure, _ = _quadratic(p=12, seed=3)
    ref = _textbook_bfgs(closure, x, 8)
    x2, closure2, _ = _quadratic(p=12, seed=3)
    opt = cls([x2], max_iter=1, tolerance_grad=0.0, tolerance_change=0.0, self_scaling=False)
    for k in range(8):
        opt.step(closure2)
        assert rel_err(x2, ref[k]) < TOL[F64], k


@pytest.mark.parametrize("cls", CLASSES)
def test_b_and_h_are_the_curvature_ratios(cls):
    """b = s.B s / s.y with B = H^-1 (computed without B) and h = y.H y / s.y, H the matrix
    that gave the step, on Rosenbrock (steps of varying length t)."""
    x, closure = _rosenbrock()
    opt = cls([x], max_iter=1, tolerance_grad=0.0, tolerance_change=0.0)
    opt.step(closure)  # the first update (from the rescaled H_0)
    for _ in range(6):
        hmat = opt.inverse_hessian()
        x0, g0 = x.detach().clone(), x.grad.clone()
        opt.step(closure)
        s, y = x.detach() - x0, x.grad - g0
        b_ref = float(s @ torch.linalg.solve(hmat, s) / (s @ y))
        h_ref = float(y @ hmat @ y / (s @ y))
        assert abs(opt.state[x]["b"] / b_ref - 1) < 1e-8
        assert abs(opt.state[x]["h"] / h_ref - 1) < 1e-8


def test_scaling_changes_the_iterates():
    """The self-scaled variants are not BFGS (the scaling is active on Rosenbrock)."""
    finals = []
    for cls, scaled in [(SSBFGS, False), (SSBFGS, True), (SSBroyden, True)]:
        x, closure = _rosenbrock()
        opt = cls([x], max_iter=6, tolerance_grad=0.0, tolerance_change=0.0, self_scaling=scaled)
        opt.step(closure)
        finals.append(x.detach().clone())
    assert rel_err(finals[1], finals[0]) > 1e-6
    assert rel_err(finals[2], finals[1]) > 1e-6


@pytest.mark.parametrize("initial_step", ["unit", "secant"])
@pytest.mark.parametrize("cls", CLASSES)
def test_resume_is_exact(cls, initial_step):
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    net = net.to(F64)
    xs = torch.randn(40, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    target = torch.sin(xs.sum(1, keepdim=True))

    def make(model):
        def closure():
            model.zero_grad()
            loss = ((model(xs) - target) ** 2).mean()
            loss.backward()
            return loss

        return closure

    opt = cls(net.parameters(), max_iter=5, initial_step=initial_step)
    opt.step(make(net))
    saved_net, saved_opt = copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict())
    opt.step(make(net))
    net2 = copy.deepcopy(net)
    net2.load_state_dict(saved_net)
    opt2 = cls(net2.parameters(), max_iter=5, initial_step=initial_step)
    opt2.load_state_dict(saved_opt)
    opt2.step(make(net2))
    for a, b in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_float32_params_keep_float64_h_on_resume():
    x = torch.nn.Parameter(torch.tensor([-1.2, 1.0]))

    def closure():
        x.grad = None
        f = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        f.backward()
        return f

    opt = SSBFGS([x], max_iter=3)
    opt.step(closure)
    opt2 = SSBFGS([x], max_iter=3)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.state[x]["H"].dtype == F64
    assert torch.equal(opt2.state[x]["H"], opt.state[x]["H"])


@pytest.mark.parametrize("cls", CLASSES)
def test_secant_initial_step_is_the_last_line_minimiser(cls):
    """On a quadratic g(t).d is linear in t, so the secant step of a search is the exact
    minimiser of f along its direction: -g.d / d.A d. The next search starts there (at most
    lr), and the runs converge to what the unit ones do."""
    g = torch.Generator().manual_seed(4)
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=F64))
    a = q @ torch.diag(torch.logspace(0, 2, 12, dtype=F64)) @ q.T
    b = torch.randn(12, generator=g, dtype=F64)
    x = torch.nn.Parameter(torch.zeros(12, dtype=F64))

    def closure():
        x.grad = None
        f = 0.5 * x @ (a @ x) - b @ x
        f.backward()
        return f

    opt = cls([x], max_iter=1, tolerance_grad=0.0, tolerance_change=0.0, initial_step="secant")
    for _ in range(3):
        x0 = x.detach().clone()
        d = -opt.inverse_hessian() @ (a @ x0 - b) if opt.state else None
        opt.step(closure)
        if d is not None:  # from the second step on: the direction of this step is -H g
            exact = float(-(a @ x0 - b).dot(d) / d.dot(a @ d))
            assert opt.state[x]["t_next"] == pytest.approx(exact, rel=1e-9)
    for make in (_rosenbrock, lambda: _quadratic()[:2]):
        x, closure = make()
        opt = cls([x], max_iter=200, tolerance_grad=1e-10, tolerance_change=0.0)
        opt.step(closure)
        unit = x.detach().clone()
        x, closure = make()
        opt = cls(
            [x], max_iter=200, tolerance_grad=1e-10, tolerance_change=0.0, initial_step="secant"
        )
        opt.step(closure)
        assert rel_err(x, unit) < 1e-6  # the same minimiser
    with pytest.raises(ValueError, match="initial_step must be one of unit, secant"):
        cls([x], initial_step="one")


def test_refuses_too_many_parameters():
    p = torch.nn.Parameter(torch.zeros(MAX_PARAMETERS + 1, dtype=F64))
    with pytest.raises(ValueError, match=r"P <= 20000.*lbfgs"):
        SSBroyden([p])


def _scaled(scale: float):
    """_quadratic's f times `scale`: the same minimiser, pairs with s.y ~ scale."""
    x, closure, xstar = _quadratic()

    def scaled():
        x.grad = None
        with torch.enable_grad():
            f = closure() * scale
        x.grad.mul_(scale)
        return f

    return x, scaled, xstar


@pytest.mark.parametrize("cls", CLASSES)
def test_scale_free_curvature_test_keeps_small_pairs(cls):
    # at scale 1e-12 every pair has s.y < 1e-10: the absolute test (L-BFGS's) never updates H
    x, closure, xstar = _scaled(1e-12)
    opt = cls([x], max_iter=60, tolerance_grad=0.0, tolerance_change=0.0)
    opt.step(closure)
    assert not opt.state[x]["updated"] and rel_err(x, xstar) > 1e-2
    x, closure, xstar = _scaled(1e-12)
    opt = cls([x], max_iter=60, tolerance_grad=0.0, tolerance_change=0.0, curvature_eps=1e-12)
    opt.step(closure)
    assert opt.state[x]["updated"] and rel_err(x, xstar) < 1e-6
    with pytest.raises(ValueError, match="curvature_eps"):
        cls([x], curvature_eps=0.0)


@pytest.mark.parametrize("cls", CLASSES)
def test_update_restarts_an_indefinite_h(cls):
    """Rounding can leave H indefinite (y.H y <= 0); the update then restarts from the scaled
    identity instead of taking the square root of a negative number."""
    x = torch.nn.Parameter(torch.zeros(4, dtype=F64))
    opt = cls([x])
    state = {"H": -torch.eye(4, dtype=F64), "updated": True}
    s = torch.tensor([1.0, 0.5, 0.0, -0.2], dtype=F64)
    y = torch.tensor([2.0, 0.4, 0.1, -0.1], dtype=F64)
    opt._update(state, s, y, 1.0, -float(s.dot(y)))
    h = _full_h(state)
    assert state["resets"] == 1 and bool(torch.isfinite(h).all())
    assert float(torch.linalg.eigvalsh(0.5 * (h + h.T)).min()) > 0
    assert rel_err(h @ y, s) < 1e-12  # the secant condition of the new pair


@pytest.mark.parametrize("cls", CLASSES)
def test_line_search_step_test_follows_tolerance_change(cls):
    """Steps below 1e-9: torch's line search quits at |t d| < 1e-9 unless told otherwise (from
    5e-9 away it left the error at ~1e-9); with tolerance_change 0 it converges."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(30, 30, generator=g, dtype=F64))
    a = q @ torch.diag(torch.logspace(0, 2, 30, dtype=F64)) @ q.T
    xstar = torch.randn(30, generator=g, dtype=F64)
    noise = torch.randn(30, generator=torch.Generator().manual_seed(1), dtype=F64)
    x = torch.nn.Parameter(xstar + 1e-9 * noise)

    def closure():
        x.grad = None
        f = 0.5 * (x - xstar) @ (a @ (x - xstar))
        f.backward()
        return f

    start = float((x - xstar).detach().norm())
    opt = cls([x], max_iter=40, tolerance_grad=0.0, tolerance_change=0.0, curvature_eps=1e-12)
    for _ in range(3):
        opt.step(closure)
    assert float((x - xstar).detach().norm()) < 1e-3 * start


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("scaled", [True, False])
def test_update_matches_the_formula(cls, scaled):
    """The stored form (a scalar times a matrix, one rank-2 GEMM) gives the module doc's
    H+ = (1 / tau) [H - Hy Hy^T / yHy + phi v v^T] + s s^T / sy, and H+ g_new, whether H y is
    computed or taken from H g_new - H g_old."""
    gen = torch.Generator().manual_seed(7)
    n = 9
    a = torch.randn(n, n, dtype=F64, generator=gen)
    hmat = a @ a.T + n * torch.eye(n, dtype=F64)  # [n, n] SPD
    g_old = torch.randn(n, dtype=F64, generator=gen)
    t = 0.7
    s = -t * (hmat @ g_old)
    y = 0.3 * s + 0.05 * torch.randn(n, dtype=F64, generator=gen)
    assert float(s @ y) > 0
    g_new = g_old + y
    x = torch.nn.Parameter(torch.zeros(n, dtype=F64))
    opt = cls([x], self_scaling=scaled)
    sy, hy = float(s @ y), hmat @ y
    yhy = float(y @ hy)
    tau, phi = opt.scalars(-t * float(g_old @ s) / sy, yhy / sy, n) if scaled else (1.0, 1.0)
    v = (yhy**0.5 / sy) * s - hy / yhy**0.5
    want = (hmat - torch.outer(hy, hy) / yhy + phi * torch.outer(v, v)) / tau
    want = want + torch.outer(s, s) / sy
    for with_hg in (True, False):
        state = {"H": hmat / 4.0, "H_scale": 4.0, "updated": True}
        out = opt._update(
            state, s, y, t, float(g_old @ s), g_new=g_new, hg_old=hmat @ g_old if with_hg else None
        )
        got = _full_h(state)
        assert rel_err(got, want) < 1e-13
        assert rel_err(out, want @ g_new) < 1e-13
        assert rel_err(got @ y, s) < 1e-12  # the secant condition


def test_state_dict_rounds_a_large_h_to_float32_and_keeps_the_live_one():
    """A checkpoint holds H's upper triangle packed row by row (P (P + 1) / 2 values), in
    float32 above CHECKPOINT_FLOAT64_LIMIT parameters; the optimizer's own H stays float64 and
    a loaded triangle becomes the same float64 triangle, zeros below."""
    from fluxkern.optim.quasi_newton import CHECKPOINT_FLOAT64_LIMIT

    for n, want in ((CHECKPOINT_FLOAT64_LIMIT, torch.float64), (2600, torch.float32)):
        w = torch.nn.Parameter(torch.linspace(-1.0, 1.0, n, dtype=torch.float64))
        opt = SSBroyden([w], max_iter=2)

        def closure(opt=opt, w=w):
            opt.zero_grad()
            loss = ((w - 0.3) ** 2).sum() + (w**4).sum()
            loss.backward()
            return loss

        opt.step(closure)
        saved = opt.state_dict()
        (state,) = saved["state"].values()
        assert "H" not in state
        packed = state["H_upper"]
        assert packed.dtype == want and packed.shape == (n * (n + 1) // 2,)
        live = opt.state[w]["H"]
        assert live.dtype == torch.float64
        rows = torch.cat([live[i, i:] for i in range(n)])  # row by row, diagonal first
        assert torch.equal(packed, rows.to(want))
        fresh = SSBroyden([w], max_iter=2)
        fresh.load_state_dict(saved)
        got = fresh.state[w]["H"]
        assert got.dtype == torch.float64 and "H_upper" not in fresh.state[w]
        assert torch.equal(got, torch.triu(live.to(want).double()))


def test_packed_triangle_rejects_a_length_no_triangle_has():
    from fluxkern.optim.quasi_newton import pack_upper, unpack_upper

    h = torch.triu(torch.randn(5, 5, dtype=F64))
    assert torch.equal(unpack_upper(pack_upper(h, F64), h.device), h)
    with pytest.raises(ValueError, match="P \\(P \\+ 1\\) / 2"):
        unpack_upper(torch.zeros(7, dtype=F64), h.device)


@pytest.mark.parametrize("cls", CLASSES)
def test_h_is_kept_as_its_upper_triangle(cls):
    """state["H"] holds H's upper triangle with zeros below; inverse_hessian() is the full
    symmetric matrix, positive definite, and a full H from an older checkpoint loads as the same
    triangle (the run then continues as from the triangle)."""
    x, closure = _rosenbrock()
    opt = cls([x], max_iter=6)
    opt.step(closure)
    h = opt.state[x]["H"]
    assert bool((torch.tril(h, -1) == 0).all())
    full = opt.inverse_hessian()
    assert torch.equal(full, full.T)
    assert float(torch.linalg.eigvalsh(full).min()) > 0
    old = opt.state_dict()
    (st,) = old["state"].values()
    del st["H_upper"]
    st["H"] = h + torch.triu(h, 1).T  # the full matrix an older version saved
    fresh = cls([x], max_iter=6)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.state[x]["H"], h)


@pytest.mark.parametrize("cls", CLASSES)
def test_deferred_update_gives_the_same_iterates(cls, monkeypatch):
    """step() leaves each update waiting for the next product (one pass over H); applying it at
    once instead gives bitwise the same iterates, and inverse_hessian() and a checkpoint see the
    waiting update."""
    from fluxkern.optim import quasi_newton

    x, closure = _rosenbrock()
    opt = cls([x], max_iter=5)
    for _ in range(3):
        opt.step(closure)
    deferred = x.detach().clone()
    state = opt.state[x]
    assert state["H_pending_u"] is not None and state["H_pending_w"].dtype == F64
    applied = state["H"].clone()
    quasi_newton.sym_rank2_update_(applied, state["H_pending_u"], state["H_pending_w"])
    want = (torch.triu(applied) + torch.triu(applied, 1).T) * state["H_scale"]
    assert torch.equal(opt.inverse_hessian(), want)
    fresh = cls([x], max_iter=5)
    fresh.load_state_dict(opt.state_dict())
    assert torch.equal(fresh.inverse_hessian(), want)

    real_update = cls._update

    def at_once(self, *args, **kwargs):
        kwargs["defer"] = False
        return real_update(self, *args, **kwargs)

    monkeypatch.setattr(cls, "_update", at_once)
    x, closure = _rosenbrock()
    opt = cls([x], max_iter=5)
    for _ in range(3):
        opt.step(closure)
    assert "H_pending_u" not in opt.state[x]
    assert torch.equal(x.detach(), deferred)


@pytest.mark.parametrize("cls", CLASSES)
def test_failed_search_retries_along_minus_g_and_restarts(cls, monkeypatch):
    """A line search that finds no lower point along a skewed H direction (step 0) is retried
    along -g in the same iteration; when that one moves, H restarts from the identity (and takes
    the step's pair), and when it fails too H is kept and the step ends where it began. Along a
    direction that is not skewed a failed search ends the step, H kept, with no retry."""
    from fluxkern.optim import quasi_newton

    real = cls._line_search

    def run(fail_first, skew_below=1.0):
        monkeypatch.setattr(quasi_newton, "RESTART_COS", skew_below)
        x, closure = _rosenbrock()
        opt = cls([x], max_iter=4, tolerance_grad=0.0, tolerance_change=0.0)
        opt.step(closure)
        state = opt.state[x]
        assert state["updated"] and "restarts" not in state
        h_before = opt.inverse_hessian()
        calls = []

        def search(self, closure, loss, g, t, d, gtd):
            calls.append((g.clone(), d.clone(), t))
            if len(calls) <= fail_first:
                return loss, g, 0.0, 1  # what torch's search returns when no trial was lower
            return real(self, closure, loss, g, t, d, gtd)

        monkeypatch.setattr(cls, "_line_search", search)
        before = x.detach().clone()
        opt.step(closure)
        monkeypatch.setattr(cls, "_line_search", real)
        return x, state, calls, before, h_before, opt

    x, state, calls, before, _, _ = run(fail_first=1)
    assert state["restarts"] == 1
    (g0, d0, _), (g1, d1, t1) = calls[:2]
    assert not torch.equal(d0, -g0)  # the first search ran along H's direction
    assert torch.equal(g1, g0) and torch.equal(d1, -g0)  # the retry along -g, from x itself
    assert t1 == min(1.0, 1.0 / float(g0.abs().sum()))  # a first step's length
    assert not torch.equal(x.detach(), before) and state["updated"]

    x, state, calls, before, h_before, opt = run(fail_first=2)
    assert len(calls) == 2 and "restarts" not in state  # both failed: the step ended
    assert torch.equal(x.detach(), before)
    assert torch.equal(opt.inverse_hessian(), h_before)  # H kept
    assert state["no_retry"]  # round-off: the next failed search is not retried

    def closure():
        x.grad = None
        f = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        f.backward()
        return f

    searches = []

    def failing(self, closure, loss, g, t, d, gtd):
        searches.append(d)
        return loss, g, 0.0, 1

    monkeypatch.setattr(cls, "_line_search", failing)
    opt.step(closure)
    assert len(searches) == 1
    monkeypatch.setattr(cls, "_line_search", real)
    opt.step(closure)  # a search that succeeds clears the flag
    assert "no_retry" not in state

    # the same failure along a direction that is not skewed (cosine above RESTART_COS, here
    # 1e-6: Rosenbrock's H direction is far from orthogonal to -g): no retry, H kept
    x, state, calls, before, h_before, opt = run(fail_first=1, skew_below=1e-6)
    (g0, d0, _), *_ = calls
    assert -float(g0.dot(d0)) > 1e-6 * float(g0.norm() * d0.norm())
    assert len(calls) == 1 and "restarts" not in state and "no_retry" not in state
    assert torch.equal(x.detach(), before) and torch.equal(opt.inverse_hessian(), h_before)
