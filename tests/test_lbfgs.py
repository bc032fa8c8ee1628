"""fluxkern.optim.LBFGS and the lbfgs_direction op.

The op is checked against its torch twin and against an independent oracle: the inverse-Hessian
approximation built densely by the BFGS update formula, applied to the gradient. The optimizer
is checked against torch.optim.LBFGS (same options) on the same closures.
"""

from __future__ import annotations

import copy

import pytest
import torch

import fluxkern
from fluxkern import ops, reference
from fluxkern.optim import LBFGS
from fluxkern.optim.lbfgs import history_device
from fluxkern.specs import LbfgsHistory
from matrix import DEVICES, TOL, rel_err

F64 = torch.float64
needs_ext = pytest.mark.skipif("cpu" not in fluxkern.backends(), reason="needs the CPU build")
needs_gpu = pytest.mark.skipif("cuda" not in DEVICES, reason="needs a GPU")


def _pairs(p, h, count, start, dtype=F64, seed=0):
    """A ring of `count` curvature pairs with y . s > 0 (y = A s for an SPD A)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(p, p, generator=g, dtype=F64)
    spd = a @ a.T / p + torch.eye(p, dtype=F64)
    s = torch.zeros(h, p, dtype=F64)
    y = torch.zeros(h, p, dtype=F64)
    rho = torch.zeros(h, dtype=F64)
    for i in range(count):
        row = (start + i) % h
        s[row] = torch.randn(p, generator=g, dtype=F64)
        y[row] = spd @ s[row]
        rho[row] = 1.0 / y[row].dot(s[row])
    grad = torch.randn(p, generator=g, dtype=F64)
    return grad.to(dtype), s.to(dtype), y.to(dtype), rho.to(dtype)


def _dense(grad, s, y, rho, start, count, h_diag):
    """-H grad with H from the BFGS inverse update, oldest pair first: H <- V^T H V + rho s s^T."""
    p, h = grad.shape[0], s.shape[0]
    hm = h_diag * torch.eye(p, dtype=F64)
    for i in range(count):
        row = (start + i) % h
        si, yi, r = s[row].double(), y[row].double(), float(rho[row])
        v = torch.eye(p, dtype=F64) - r * torch.outer(yi, si)
        hm = v.T @ hm @ v + r * torch.outer(si, si)
    return -(hm @ grad.double())


def _gram(s, y):
    return (s @ y.T).contiguous(), (y @ y.T).contiguous()


@needs_ext
@pytest.mark.parametrize("h,count,start", [(4, 0, 0), (4, 1, 3), (5, 5, 0), (5, 5, 3), (7, 4, 5)])
def test_direction_matches_twin_and_dense_bfgs(h, count, start):
    grad, s, y, rho = _pairs(13, h, count, start)
    sy, yy = _gram(s, y)
    fused = torch.ops.fluxkern.lbfgs_direction(grad, s, y, rho, sy, yy, start, count, -1, 0.7)
    twin = reference.lbfgs_direction(
        grad, LbfgsHistory(s, y, rho, *_gram(s, y), start, count), -1, 0.7
    )
    dense = _dense(grad, s, y, rho, start, count, 0.7)
    assert rel_err(fused, twin) < TOL[F64]
    assert rel_err(fused, dense) < TOL[F64]


@needs_ext
@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_gram_matrices_kept_up_to_date_pair_by_pair(backend):
    # pairs stored one at a time into a ring of 4 (wrapping twice): after each call the Gram
    # entries of the stored pairs equal the full products and d equals the dense oracle
    h, p = 4, 11
    grad, s_all, y_all, rho_all = _pairs(p, 10, 10, 0, seed=3)
    s, y = torch.zeros(h, p, dtype=F64), torch.zeros(h, p, dtype=F64)
    rho, sy, yy = (
        torch.zeros(h, dtype=F64),
        torch.zeros(h, h, dtype=F64),
        torch.zeros(h, h, dtype=F64),
    )

    def fn(grad, *ring_and_rest):
        if backend == "cpu":  # the raw op: the ring's fields positionally
            return torch.ops.fluxkern.lbfgs_direction(grad, *ring_and_rest)
        return reference.lbfgs_direction(grad, LbfgsHistory(*ring_and_rest[:7]), *ring_and_rest[7:])

    start, count = 0, 0
    for k in range(10):
        if count == h:
            row, start = start, (start + 1) % h
        else:
            row, count = (start + count) % h, count + 1
        s[row], y[row], rho[row] = s_all[k], y_all[k], rho_all[k]
        d = fn(grad, s, y, rho, sy, yy, start, count, row, 1.1)
        rows = [(start + i) % h for i in range(count)]
        full_sy, full_yy = _gram(s, y)
        for a in rows:
            for b in rows:
                assert abs(sy[a, b] - full_sy[a, b]) <= 1e-12 * full_sy.abs().max()
                assert abs(yy[a, b] - full_yy[a, b]) <= 1e-12 * full_yy.abs().max()
        assert rel_err(d, _dense(grad, s, y, rho, start, count, 1.1)) < TOL[F64]


@needs_ext
def test_direction_float32_and_opcheck():
    grad, s, y, rho = _pairs(9, 3, 3, 1, dtype=torch.float32)
    sy, yy = _gram(s, y)
    d = ops.lbfgs_direction(grad, LbfgsHistory(s, y, rho, sy, yy, 1, 3), -1, 1.3)
    ref = _dense(grad, s, y, rho, 1, 3, 1.3)
    assert rel_err(d, ref) < TOL[torch.float32]
    torch.library.opcheck(
        torch.ops.fluxkern.lbfgs_direction, (grad, s, y, rho, sy, yy, 1, 3, 2, 1.3)
    )


@needs_ext
@pytest.mark.parametrize(
    "change,match",
    [
        (lambda a: {**a, "s": a["s"][:, :-1]}, "s must be"),
        (lambda a: {**a, "y": a["y"][:-1]}, "y must be like s"),
        (lambda a: {**a, "rho": a["rho"][:-1]}, "rho must be"),
        (lambda a: {**a, "sy": a["sy"][:-1]}, "sy and yy must be"),
        (lambda a: {**a, "count": 9}, "count"),
        (lambda a: {**a, "start": -1}, "start"),
        (lambda a: {**a, "new_row": 3}, "new_row"),
        (lambda a: {**a, "y": a["y"].float()}, "dtype"),
        (lambda a: {**a, "grad": a["grad"][None]}, "grad must be 1-D"),
    ],
)
def test_direction_bad_arguments(change, match):
    grad, s, y, rho = _pairs(6, 3, 2, 0)
    sy, yy = _gram(s, y)
    a = change(
        {"grad": grad, "s": s, "y": y, "rho": rho, "sy": sy, "yy": yy, "start": 0, "count": 2}
        | {"new_row": -1}
    )
    with pytest.raises((ValueError, TypeError, RuntimeError), match=match):
        torch.ops.fluxkern.lbfgs_direction(
            a["grad"],
            a["s"],
            a["y"],
            a["rho"],
            a["sy"],
            a["yy"],
            a["start"],
            a["count"],
            a["new_row"],
            1.0,
        )


def _problem(seed=0, device="cpu"):
    """A small augmented-Lagrangian problem (flux-form Poisson) and its closure factory."""
    torch.manual_seed(seed)
    net = fluxkern.MLP(2, 3, 12, 2, dtype=F64).to(device)
    x, y = fluxkern.inputs("x y")
    u, qx, qy = fluxkern.outputs("u qx qy")
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(80, 2, generator=g, dtype=F64).to(device)
    bnd = torch.rand(20, 2, generator=g, dtype=F64).round().to(device)
    terms = [
        fluxkern.Objective("pde", qx.d(x) + qy.d(y) + 1.0, pts, reduction="sum"),
        fluxkern.Constraint("flux", [qx - u.d(x), qy - u.d(y)], pts, reduction="sum"),
        fluxkern.Constraint("bc", u, bnd, reduction="sum"),
    ]
    return net, terms


def _run(opt_cls, steps=4, line_search="strong_wolfe", history=5, resume_at=None, device="cpu"):
    net, terms = _problem(device=device)
    al = fluxkern.AugmentedLagrangian(net, terms)
    opt = opt_cls(net.parameters(), max_iter=7, history_size=history, line_search_fn=line_search)
    evals = [0]

    def closure():
        evals[0] += 1
        opt.zero_grad()
        loss = al()
        loss.backward()
        return loss

    losses = []
    for k in range(steps):
        if resume_at == k:  # a fresh optimizer and model restored from state dicts
            state = copy.deepcopy(opt.state_dict())
            params = copy.deepcopy(net.state_dict())
            net.load_state_dict(params)
            opt = opt_cls(
                net.parameters(), max_iter=7, history_size=history, line_search_fn=line_search
            )
            opt.load_state_dict(state)
        opt.step(closure)
        al.update_multipliers()
        losses.append(float(al()))
    return losses, evals[0], [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("line_search", ["strong_wolfe", None])
def test_optimizer_follows_torch_lbfgs(line_search):
    # history 5 < iterations: the ring wraps around
    ours, n_ours, p_ours = _run(LBFGS, line_search=line_search)
    theirs, n_theirs, p_theirs = _run(torch.optim.LBFGS, line_search=line_search)
    assert n_ours == n_theirs
    for a, b in zip(ours, theirs, strict=True):
        assert abs(a - b) <= 1e-8 * abs(b)
    for a, b in zip(p_ours, p_theirs, strict=True):
        assert rel_err(a, b) < 1e-7


def test_optimizer_resume_from_state_dict_is_exact():
    full, n_full, p_full = _run(LBFGS)
    resumed, n_res, p_res = _run(LBFGS, resume_at=2)
    assert full == resumed and n_full == n_res
    for a, b in zip(p_full, p_res, strict=True):
        assert torch.equal(a, b)


def test_history_lives_on_the_cpu_where_the_cpu_op_is_built(monkeypatch):
    like = torch.zeros(3, dtype=F64)
    assert history_device(like) == torch.device("cpu")
    monkeypatch.setattr(ops, "backends", lambda: ["torch"])  # a pure-torch install
    assert history_device(like) == like.device


@needs_gpu
@needs_ext
def test_optimizer_on_cuda_keeps_its_history_on_the_cpu_and_follows_torch_lbfgs():
    ours, n_ours, p_ours = _run(LBFGS, device="cuda")
    theirs, n_theirs, p_theirs = _run(torch.optim.LBFGS, device="cuda")
    assert n_ours == n_theirs
    for a, b in zip(ours, theirs, strict=True):
        assert abs(a - b) <= 1e-8 * abs(b)
    for a, b in zip(p_ours, p_theirs, strict=True):
        assert a.is_cuda and rel_err(a, b) < 1e-7
    net, terms = _problem(device="cuda")
    al = fluxkern.AugmentedLagrangian(net, terms)
    opt = LBFGS(net.parameters(), max_iter=3, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = al()
        loss.backward()
        return loss

    opt.step(closure)
    opt.step(closure)
    state = opt.state[next(iter(net.parameters()))]
    assert state["count"] > 0 and all(state[k].device.type == "cpu" for k in ("s", "y", "sy"))


@needs_gpu
@needs_ext
def test_optimizer_on_cuda_resumes_exactly_with_its_history_back_on_the_cpu():
    # Optimizer.load_state_dict moves the saved history to the parameters' device
    full, n_full, p_full = _run(LBFGS, device="cuda")
    resumed, n_res, p_res = _run(LBFGS, resume_at=2, device="cuda")
    assert full == resumed and n_full == n_res
    for a, b in zip(p_full, p_res, strict=True):
        assert torch.equal(a, b)


def test_steps_follow_a_parameter_whose_storage_was_replaced():
    # _add_grad keeps flat views of the parameters; `p.data = ...` must not leave them stale
    net, _ = _problem()
    params = list(net.parameters())
    opt = LBFGS(params)
    d = torch.arange(sum(p.numel() for p in params), dtype=F64)
    sizes = [p.numel() for p in params]
    chunks = [c.view_as(p) for c, p in zip(d.split(sizes), params, strict=True)]
    before = [p.detach().clone() for p in params]
    with torch.no_grad():  # as in step()
        opt._add_grad(0.5, d)
        params[0].data = params[0].data.clone()  # a new storage, as a reassignment makes
        opt._add_grad(0.5, d)
    for p, b, c in zip(params, before, chunks, strict=True):
        assert torch.equal(p.detach(), b + 0.5 * c + 0.5 * c)


def test_steps_reach_a_non_contiguous_parameter():
    p = torch.nn.Parameter(torch.zeros(3, 4, dtype=F64).t())  # [4, 3], not contiguous
    q = torch.nn.Parameter(torch.ones(5, dtype=F64))
    opt = LBFGS([p, q])
    with torch.no_grad():  # as in step()
        opt._add_grad(2.0, torch.arange(17, dtype=F64))
    assert torch.equal(p.detach(), 2.0 * torch.arange(12, dtype=F64).view(4, 3))
    assert torch.equal(q.detach(), 1.0 + 2.0 * torch.arange(12, 17, dtype=F64))


def test_optimizer_bad_options():
    net, _ = _problem()
    with pytest.raises(ValueError, match="learning rate"):
        LBFGS(net.parameters(), lr=-1)
    with pytest.raises(ValueError, match="history_size"):
        LBFGS(net.parameters(), history_size=0)
    with pytest.raises(ValueError, match="strong_wolfe"):
        LBFGS(net.parameters(), line_search_fn="backtracking")


def test_loads_a_torch_lbfgs_state_and_continues_like_it():
    # two steps with torch's optimizer, then its state into ours: the next steps agree with
    # torch's own continuation
    def run(switch):
        net, terms = _problem()
        al = fluxkern.AugmentedLagrangian(net, terms)
        kw = {"max_iter": 7, "history_size": 5, "line_search_fn": "strong_wolfe"}
        opt = torch.optim.LBFGS(net.parameters(), **kw)

        def closure():
            opt.zero_grad()
            loss = al()
            loss.backward()
            return loss

        for k in range(4):
            if k == 2 and switch:
                state = copy.deepcopy(opt.state_dict())
                opt = LBFGS(net.parameters(), **kw)
                opt.load_state_dict(state)
            opt.step(closure)
            al.update_multipliers()
        return [p.detach().clone() for p in net.parameters()]

    for a, b in zip(run(True), run(False), strict=True):
        assert rel_err(a, b) < 1e-7


def test_scale_free_curvature_test_keeps_small_pairs():
    """At loss scale 1e-12 every pair has y.s < 1e-10: torch's test keeps none (steepest
    descent), curvature_eps keeps them and the quadratic is solved."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(30, 30, generator=g, dtype=torch.float64))
    a = q @ torch.diag(torch.logspace(0, 2, 30, dtype=torch.float64)) @ q.T
    b = torch.randn(30, generator=g, dtype=torch.float64)
    xstar = torch.linalg.solve(a, b)
    errors, kept = {}, {}
    for eps in (None, 1e-12):
        x = torch.nn.Parameter(torch.zeros(30, dtype=torch.float64))

        def closure(x=x):
            x.grad = None
            f = 1e-12 * (0.5 * x @ (a @ x) - b @ x)
            f.backward()
            return f

        opt = LBFGS(
            [x],
            max_iter=60,
            tolerance_grad=0.0,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
            curvature_eps=eps,
        )
        opt.step(closure)
        errors[eps], kept[eps] = rel_err(x, xstar), opt.state[x]["count"]
    assert kept[None] == 0 and errors[None] > 1e-2
    assert kept[1e-12] > 0 and errors[1e-12] < 1e-6
    with pytest.raises(ValueError, match="curvature_eps"):
        LBFGS([x], curvature_eps=-1.0)
