"""Dual (multiplier) rules of DESIGN.md section 1 against sequences computed by hand.

The hand computations use plain Python floats, element by element, straight from the formulas:
    rmsprop: v <- beta v + (1-beta) C^2 ; lambda <- lambda + eta C / sqrt(v + eps)
    pecann:  if ||C|| >= 0.25 ||C_prev|| and ||C|| > eps: mu <- min(2 mu, mu_max); lambda += mu C
    capu:    vbar <- zeta vbar + (1-zeta) C^2 (per expression, C^2 averaged over the points);
             if L >= omega L_prev: lambda <- lambda + mu C; mu <- max(eta / sqrt(vbar + eps), mu)
"""

from __future__ import annotations

import math

import pytest
import torch

import fluxkern
from fluxkern.duals import make_rule
from matrix import TOL, rel_err

F64 = torch.float64
TOL64 = TOL[F64]

# Three constraint values per multiplier kind: pointwise [N=3, R=2] and global [R=2].
C_POINTWISE = [
    [[0.5, -1.0], [2.0, 0.25], [-0.3, 0.0]],
    [[0.1, 0.4], [-1.5, 0.2], [0.7, -0.05]],
    [[-0.2, 0.3], [0.05, 1.1], [0.6, 0.9]],
]
C_GLOBAL = [[0.8, -0.4], [0.3, 0.6], [-0.1, 0.2]]


def _flat(c):
    """Rows of C as a list of lists (a [R] vector becomes one row)."""
    return c if isinstance(c[0], list) else [c]


def _shape(c):
    return (len(c), len(c[0])) if isinstance(c[0], list) else (len(c),)


def _as_tensor(c):
    return torch.tensor(c, dtype=F64)


def _close(t, want):
    want_t = torch.tensor(want, dtype=F64)
    assert t.shape == want_t.shape
    assert rel_err(t, want_t) <= TOL64, (t, want_t)


def _init(rule, shape, n_res, init=None):
    return rule.init_state(shape, n_res, init, F64, torch.device("cpu"))


# ---------------------------------------------------------------------------------- defaults


def test_defaults_match_design():
    assert make_rule("rmsprop").options == {"beta": 0.9, "eps": 1e-8, "eta": 1.0, "mu": 0.0}
    p = make_rule("pecann").options
    assert p["mu"] == 1.0 and p["mu_max"] == 1e4
    c = make_rule("capu").options
    assert c["zeta"] == 0.99 and c["omega"] == 0.999 and c["eps"] == 1e-16 and c["mu"] == 1.0


@pytest.mark.parametrize(
    "name,lam0,mu0",
    [("rmsprop", 1.0, 0.0), ("pecann", 0.0, 1.0), ("capu", 1.0, 1.0)],
)
@pytest.mark.parametrize("shape", [(3, 2), (2,)])
def test_initial_state(name, lam0, mu0, shape):
    rule = make_rule(name)
    st = _init(rule, shape, 2)
    assert st["lam"].shape == shape and torch.all(st["lam"] == lam0)
    assert st["mu"].shape == (2,) and torch.all(st["mu"] == mu0)
    assert st["lam"].dtype == F64
    st = _init(rule, shape, 2, init=0.25)
    assert torch.all(st["lam"] == 0.25)


def test_constraint_init_none_takes_the_rule_default():
    """Constraint(init=None) gives lambda0 of the rule; init=x overrides it."""
    u = fluxkern.outputs("u")
    net = fluxkern.MLP(1, 1, 4, 1, dtype=F64)
    pts = torch.rand(3, 1, dtype=F64)
    for dual, lam0 in (("rmsprop", 1.0), ("pecann", 0.0), ("capu", 1.0)):
        al = fluxkern.AugmentedLagrangian(
            net,
            [fluxkern.Constraint("a", u, pts), fluxkern.Constraint("b", u, pts, init=0.5)],
            dual=dual,
            backend="torch",
        )
        assert torch.all(al.multipliers["a"] == lam0)
        assert torch.all(al.multipliers["b"] == 0.5)


# ---------------------------------------------------------------------------------- rmsprop


def _rmsprop_by_hand(cs, beta, eps, eta, lam0):
    shape = _shape(cs[0])
    rows = len(_flat(cs[0]))
    cols = len(_flat(cs[0])[0])
    v = [[0.0] * cols for _ in range(rows)]
    lam = [[lam0] * cols for _ in range(rows)]
    out = []
    for c in cs:
        c = _flat(c)
        for i in range(rows):
            for j in range(cols):
                v[i][j] = beta * v[i][j] + (1 - beta) * c[i][j] ** 2
                lam[i][j] = lam[i][j] + eta * c[i][j] / math.sqrt(v[i][j] + eps)
        snap = [row[:] for row in lam]
        out.append((snap if len(shape) == 2 else snap[0], [r[:] for r in v]))
    return out


@pytest.mark.parametrize("kind", ["pointwise", "global"])
@pytest.mark.parametrize(
    "opts", [{}, {"beta": 0.5, "eps": 1e-3, "eta": 0.1}, {"eta": 1e-2, "mu": 3.0}]
)
def test_rmsprop_three_updates_by_hand(kind, opts):
    cs = C_POINTWISE if kind == "pointwise" else C_GLOBAL
    rule = make_rule("rmsprop", **opts)
    full = {"beta": 0.9, "eps": 1e-8, "eta": 1.0, "mu": 0.0, **opts}
    st = _init(rule, _shape(cs[0]), 2)
    want = _rmsprop_by_hand(cs, full["beta"], full["eps"], full["eta"], 1.0)
    for c, (lam, v) in zip(cs, want, strict=True):
        rule.update(st, _as_tensor(c), 1.0)
        _close(st["lam"], lam)
        _close(st["v"].reshape(-1, 2), v)
        # mu stays where it started (0 unless given)
        assert torch.all(st["mu"] == full["mu"])


def test_rmsprop_first_step_is_about_eta_over_sqrt_one_minus_beta():
    """Sanity of the by-hand arithmetic: from v0 = 0 the first step is eta sign(C)/sqrt(1-beta)."""
    rule = make_rule("rmsprop")
    st = _init(rule, (2,), 2)
    rule.update(st, torch.tensor([4.0, -4.0], dtype=F64), 0.0)
    step = 1 / math.sqrt(0.1 + 1e-8 / 16)  # 4 / sqrt(1.6 + 1e-8)
    _close(st["lam"], [1 + step, 1 - step])


# ---------------------------------------------------------------------------------- pecann


def _norm(c):
    return math.sqrt(sum(v * v for row in _flat(c) for v in row))


def _pecann_by_hand(cs, mu0, mu_max, eps, lam0):
    rows, cols = len(_flat(cs[0])), len(_flat(cs[0])[0])
    lam = [[lam0] * cols for _ in range(rows)]
    mu = mu0
    prev = 0.0
    out = []
    for c in cs:
        n = _norm(c)
        updated = n >= 0.25 * prev and n > eps
        if updated:
            mu = min(2 * mu, mu_max)
            for i in range(rows):
                for j in range(cols):
                    lam[i][j] += mu * _flat(c)[i][j]
        prev = n
        snap = [row[:] for row in lam]
        out.append((snap if isinstance(c[0], list) else snap[0], mu, updated))
    return out


@pytest.mark.parametrize("kind", ["pointwise", "global"])
@pytest.mark.parametrize("opts", [{}, {"mu": 0.5, "mu_max": 1.5}])
def test_pecann_three_updates_by_hand(kind, opts):
    base = C_POINTWISE if kind == "pointwise" else C_GLOBAL
    # third C is tiny: ||C3|| < 0.25 ||C2||, so the third call must not update
    cs = [base[0], base[1], [[v * 0.01 for v in row] for row in _flat(base[2])]]
    if kind == "global":
        cs[2] = cs[2][0]
    full = {"mu": 1.0, "mu_max": 1e4, "eps": 1e-8, **opts}
    want = _pecann_by_hand(cs, full["mu"], full["mu_max"], full["eps"], 0.0)
    assert [w[2] for w in want] == [True, True, False]
    rule = make_rule("pecann", **opts)
    st = _init(rule, _shape(cs[0]), 2)
    for c, (lam, mu, _) in zip(cs, want, strict=True):
        rule.update(st, _as_tensor(c), 1.0)
        _close(st["lam"], lam)
        _close(st["mu"], [mu, mu])


def test_pecann_no_update_at_zero_constraint_and_mu_clamped():
    rule = make_rule("pecann", mu_max=3.0)
    st = _init(rule, (2,), 2)
    rule.update(st, torch.zeros(2, dtype=F64), 0.0)  # ||C|| = 0 <= eps: nothing changes
    assert torch.all(st["lam"] == 0) and torch.all(st["mu"] == 1.0)
    for mu_want in (2.0, 3.0, 3.0):
        rule.update(st, torch.tensor([1.0, 1.0], dtype=F64), 0.0)
        assert torch.all(st["mu"] == mu_want)
    _close(st["lam"], [8.0, 8.0])  # 2 + 3 + 3


# ---------------------------------------------------------------------------------- capu


def _capu_by_hand(cs, losses, zeta, omega, eps, eta, lam0, mu0):
    rows, cols = len(_flat(cs[0])), len(_flat(cs[0])[0])
    lam = [[lam0] * cols for _ in range(rows)]
    mu = [mu0] * cols
    vbar = [0.0] * cols
    prev = 0.0
    out = []
    for c, loss in zip(cs, losses, strict=True):
        fc = _flat(c)
        for j in range(cols):
            c2 = sum(fc[i][j] ** 2 for i in range(rows)) / rows
            vbar[j] = zeta * vbar[j] + (1 - zeta) * c2
        updated = loss >= omega * prev
        if updated:
            for i in range(rows):
                for j in range(cols):
                    lam[i][j] += mu[j] * fc[i][j]
            for j in range(cols):
                mu[j] = max(eta / math.sqrt(vbar[j] + eps), mu[j])
        prev = loss
        snap = [row[:] for row in lam]
        out.append((snap if isinstance(c[0], list) else snap[0], mu[:], vbar[:], updated))
    return out


@pytest.mark.parametrize("kind", ["pointwise", "global"])
@pytest.mark.parametrize("opts", [{}, {"zeta": 0.5, "omega": 0.9, "eta": 0.01, "mu": 2.0}])
def test_capu_three_updates_by_hand(kind, opts):
    cs = C_POINTWISE if kind == "pointwise" else C_GLOBAL
    losses = [5.0, 4.0, 4.5]  # update, skip (4 < omega * 5), update (4.5 >= omega * 4)
    full = {"zeta": 0.99, "omega": 0.999, "eps": 1e-16, "eta": 1.0, "mu": 1.0, **opts}
    want = _capu_by_hand(
        cs, losses, full["zeta"], full["omega"], full["eps"], full["eta"], 1.0, full["mu"]
    )
    assert [w[3] for w in want] == [True, False, True]
    rule = make_rule("capu", **opts)
    st = _init(rule, _shape(cs[0]), 2)
    for c, loss, (lam, mu, vbar, _) in zip(cs, losses, want, strict=True):
        rule.update(st, _as_tensor(c), loss)
        _close(st["lam"], lam)
        _close(st["mu"], mu)
        _close(st["vbar"], vbar)


def test_capu_penalty_grows_to_eta_over_rms():
    """With zeta = 0: vbar = mean C^2 and mu = max(eta / rms(C), mu)."""
    rule = make_rule("capu", zeta=0.0, eta=1.0)
    st = _init(rule, (2, 1), 1)
    rule.update(st, torch.tensor([[0.01], [0.03]], dtype=F64), 1.0)
    _close(st["mu"], [1 / math.sqrt((0.01**2 + 0.03**2) / 2 + 1e-16)])


# ---------------------------------------------------------------------------------- errors


def test_unknown_rule_and_option_errors():
    with pytest.raises(ValueError, match=r"unknown dual rule 'adam'; choose from \['capu', "):
        make_rule("adam")
    with pytest.raises(TypeError, match=r"dual rule 'rmsprop': unknown option\(s\) \['gamma'\]"):
        make_rule("rmsprop", gamma=0.5)
    with pytest.raises(TypeError, match=r"dual rule 'pecann': unknown option\(s\) \['beta'\]"):
        make_rule("pecann", beta=0.9)
    with pytest.raises(TypeError, match="option 'beta' must be a finite number"):
        make_rule("rmsprop", beta=float("nan"))
    with pytest.raises(TypeError, match="option 'eta' must be a finite number"):
        make_rule("capu", eta="1")
    net = fluxkern.MLP(1, 1, 4, 1, dtype=F64)
    u = fluxkern.outputs("u")
    terms = [fluxkern.Constraint("bc", u, torch.rand(2, 1, dtype=F64))]
    with pytest.raises(ValueError, match="unknown dual rule 'sgd'"):
        fluxkern.AugmentedLagrangian(net, terms, dual="sgd")
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['zeta'\]"):
        fluxkern.AugmentedLagrangian(net, terms, dual="rmsprop", zeta=0.5)


# ---------------------------------------------------------------------------------- end to end


def _tiny_problem(dual, multiplier, reduction, **opts):
    torch.manual_seed(3)
    x = fluxkern.inputs("x")
    u, q = fluxkern.outputs("u q")
    g = fluxkern.data("g")
    net = fluxkern.MLP(1, 2, 6, 2, dtype=F64)
    pts = torch.linspace(0.1, 0.9, 5, dtype=F64)[:, None]
    bnd = torch.tensor([[0.0], [1.0]], dtype=F64)
    terms = [
        fluxkern.Objective("pde", q.d(x) + 1.0, pts, reduction=reduction),
        fluxkern.Constraint("flux", q - u.d(x), pts, multiplier=multiplier, reduction=reduction),
        fluxkern.Constraint(
            "bc",
            u - g,
            bnd,
            data={"g": torch.tensor([0.3, -0.2], dtype=F64)},
            form="signed",
            multiplier=multiplier,
            reduction=reduction,
        ),
    ]
    return fluxkern.AugmentedLagrangian(net, terms, dual=dual, backend="torch", **opts)


def _red(c, reduction):
    """C [N, R] as the rule sees it for a global multiplier: reduced over the points."""
    return [
        (sum(row[j] for row in c) / (len(c) if reduction == "mean" else 1))
        for j in range(len(c[0]))
    ]


def _loss_by_hand(obj_loss, cvals, lams, mus, reduction):
    total = obj_loss
    for name, c in cvals.items():
        lam, mu = lams[name], mus[name]
        per = []
        for i, row in enumerate(c):
            s = 0.0
            for j, cij in enumerate(row):
                lij = lam[i][j] if isinstance(lam[0], list) else lam[j]
                s += lij * cij + 0.5 * mu[j] * cij * cij
            per.append(s)
        total += sum(per) / (len(per) if reduction == "mean" else 1)
    return total


@pytest.mark.parametrize("dual", ["rmsprop", "pecann", "capu"])
@pytest.mark.parametrize("multiplier", ["pointwise", "global"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_update_multipliers_end_to_end(dual, multiplier, reduction):
    """Three AugmentedLagrangian.update_multipliers() calls at fixed parameters, against the rule
    formulas applied by hand to constraint_values() (C does not change between the calls)."""
    al = _tiny_problem(dual, multiplier, reduction)
    cvals = {k: v.tolist() for k, v in al.constraint_values().items()}
    assert al.multipliers["flux"].shape == ((5, 1) if multiplier == "pointwise" else (1,))
    obj_loss = al.losses()["pde"]
    # what the rule sees: C per point, or reduced over the points for a global multiplier
    seen = {k: (c if multiplier == "pointwise" else _red(c, reduction)) for k, c in cvals.items()}
    lams = {k: v.tolist() for k, v in al.multipliers.items()}
    mus = {k: v.tolist() for k, v in al.penalties.items()}
    state = {k: {"v": [[0.0] * len(_flat(s)[0]) for _ in _flat(s)]} for k, s in seen.items()}
    vbar = {k: [0.0] * len(_flat(s)[0]) for k, s in seen.items()}
    prev_norm = {k: 0.0 for k in seen}
    loss_prev = 0.0
    for _ in range(3):
        loss = _loss_by_hand(obj_loss, cvals, lams, mus, reduction)
        returned = al.update_multipliers()
        for k in cvals:
            assert torch.equal(returned[k], torch.tensor(cvals[k], dtype=F64))
        for k, s in seen.items():
            fs, fl = _flat(s), _flat(lams[k])
            if dual == "rmsprop":
                v = state[k]["v"]
                for i, row in enumerate(fs):
                    for j, cij in enumerate(row):
                        v[i][j] = 0.9 * v[i][j] + 0.1 * cij * cij
                        fl[i][j] += cij / math.sqrt(v[i][j] + 1e-8)
            elif dual == "pecann":
                n = _norm(s)
                if n >= 0.25 * prev_norm[k] and n > 1e-8:
                    mus[k] = [min(2 * m, 1e4) for m in mus[k]]
                    for i, row in enumerate(fs):
                        for j, cij in enumerate(row):
                            fl[i][j] += mus[k][j] * cij
                prev_norm[k] = n
            else:
                for j in range(len(fs[0])):
                    c2 = sum(row[j] ** 2 for row in fs) / len(fs)
                    vbar[k][j] = 0.99 * vbar[k][j] + 0.01 * c2
                if loss >= 0.999 * loss_prev:
                    for i, row in enumerate(fs):
                        for j, cij in enumerate(row):
                            fl[i][j] += mus[k][j] * cij
                    mus[k] = [
                        max(1.0 / math.sqrt(vbar[k][j] + 1e-16), mus[k][j])
                        for j in range(len(fs[0]))
                    ]
            lams[k] = fl if isinstance(lams[k][0], list) else fl[0]
        loss_prev = loss
        for k in lams:
            _close(al.multipliers[k], lams[k])
            _close(al.penalties[k], mus[k])
    # the multipliers moved: the test is not vacuous
    lam0 = 0.0 if dual == "pecann" else 1.0
    assert bool((al.multipliers["flux"] != lam0).all())
    assert bool((al.multipliers["bc"] != lam0).all())
