"""fluxkern.optim.GaussNewton and AugmentedLagrangian.residual_terms.

Oracles: autograd's gradient of the augmented-Lagrangian loss (the GGN gradient J^T f'(r) must
equal it), autograd's first and second derivatives of the per-row loss f(r), the closed-form
solution of linear least squares, and the damping rule written out by hand.
"""

from __future__ import annotations

import pytest
import torch

import fluxkern
from fluxkern import problems, solver
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.optim import GaussNewton
from fluxkern.residual_terms import loss_derivatives, torch_residual_jacobian
from matrix import TOL, rel_err

F64 = torch.float64


def _al(name: str, seed: int = 0, **sizes: int) -> AugmentedLagrangian:
    """A small float64 AugmentedLagrangian of a registered problem, with multipliers and
    penalties moved off their initial values (random signs where the form allows it)."""
    p = problems.get(name)
    p.defaults = {**p.defaults, **sizes}
    p.width, p.depth = 6, 2
    torch.manual_seed(seed)
    model = solver.build_model(p, "flux", F64, torch.device("cpu"))
    al = AugmentedLagrangian(model, p.flux_terms(seed, F64, torch.device("cpu")))
    gen = torch.Generator().manual_seed(seed + 1)
    for st in al._state.values():
        st["lam"] = st["lam"] * (0.5 + torch.rand(st["lam"].shape, generator=gen, dtype=F64))
        st["mu"] = torch.rand(st["mu"].shape, generator=gen, dtype=F64)
    return al


def _ggn_gradient(al: AugmentedLagrangian) -> torch.Tensor:
    terms = al.residual_terms()
    return sum(t.jac.reshape(-1, t.jac.shape[-1]).T @ t.fprime.reshape(-1) for t in terms)


def test_residual_terms_follow_new_points():
    """residual_terms keeps its per-block groups between calls; set_terms must replace them."""
    al = _al("poisson", n_interior=40, n_boundary=16)
    first = {t.name: t.jac.shape[0] for t in al.residual_terms()}
    p = problems.get("poisson")
    p.defaults = {**p.defaults, "n_interior": 30, "n_boundary": 12}
    al.set_terms(p.flux_terms(5, F64, torch.device("cpu")))
    second = {t.name: t.jac.shape[0] for t in al.residual_terms()}
    assert first != second
    assert second == {t.name: t.n for t in al.terms}
    loss = al()
    spec = al.model.spec()
    params = [t for pair in zip(spec.weights, spec.biases, strict=True) for t in pair]
    expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
    assert rel_err(_ggn_gradient(al), expected) < TOL[F64]


@pytest.mark.parametrize(
    "name, sizes",
    [
        ("poisson", {"n_interior": 40, "n_boundary": 16}),
        ("convection", {"n_interior": 40, "n_boundary": 16, "n_initial": 16}),
        ("composite_heat", {"n_interior": 40, "n_boundary": 16, "n_initial": 16}),
    ],
)
def test_ggn_gradient_equals_autograd(name, sizes):
    p = problems.get(name)
    sizes = {k: v for k, v in sizes.items() if k in p.defaults}
    al = _al(name, **sizes)
    spec = al.model.spec()
    params = [t for pair in zip(spec.weights, spec.biases, strict=True) for t in pair]
    loss = al()
    grads = torch.autograd.grad(loss, params)
    expected = torch.cat([g.reshape(-1) for g in grads])
    assert rel_err(_ggn_gradient(al), expected) < TOL[F64]


def test_ggn_gradient_with_torch_fallback_blocks():
    """Non-polynomial and degree-4 blocks (torch path, torch.func.jacrev), one signed with a
    global multiplier, next to a fused objective."""
    x, y = fluxkern.inputs("x y")
    u, qx, qy = fluxkern.outputs("u qx qy")
    f = fluxkern.data("f")
    gen = torch.Generator().manual_seed(5)
    pts = torch.rand(9, 2, generator=gen, dtype=F64)
    fv = torch.rand(9, generator=gen, dtype=F64)
    terms = [
        fluxkern.Objective("pde", qx.d(x) + qy.d(y) + f, pts, {"f": fv}),
        fluxkern.Constraint(
            "nonpoly",
            [fluxkern.sin(u) - qx, qy - u.d(y) * fluxkern.exp(f * u)],
            pts,
            {"f": fv},
            form="signed",
            multiplier="global",
            reduction="sum",
        ),
        fluxkern.Constraint("quartic", u**4 - qx.d(y), pts),
    ]
    torch.manual_seed(6)
    net = fluxkern.MLP(2, 3, 6, 2, "tanh").to(F64)
    with pytest.warns(UserWarning):
        al = AugmentedLagrangian(net, terms)
    assert not al.bound["nonpoly"].fused and not al.bound["quartic"].fused
    al._state["nonpoly"]["lam"] = torch.tensor([0.7, -1.3], dtype=F64)
    al._state["nonpoly"]["mu"] = torch.tensor([0.4, 2.0], dtype=F64)
    spec = net.spec()
    params = [t for pair in zip(spec.weights, spec.biases, strict=True) for t in pair]
    expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(al(), params)])
    assert rel_err(_ggn_gradient(al), expected) < TOL[F64]


def test_fused_op_and_jacrev_paths_agree():
    al = _al("poisson", n_interior=30, n_boundary=12)
    spec = al.model.spec()
    for term in al.residual_terms():
        r, jac = torch_residual_jacobian(al.bound[term.name], spec)
        assert rel_err(term.r, r) < TOL[F64] and rel_err(term.jac, jac) < TOL[F64]


@pytest.mark.parametrize("squared", [1.0, 0.0])
def test_loss_derivatives_match_autograd(squared):
    gen = torch.Generator().manual_seed(0)
    r = torch.randn(7, 3, generator=gen, dtype=F64)
    lam = torch.randn(7, 3, generator=gen, dtype=F64).abs()
    mu = torch.rand(3, generator=gen, dtype=F64)
    sq = torch.full((3,), squared, dtype=F64)
    red = torch.tensor([0.5, 1.0, 0.25], dtype=F64)

    def f(rr):
        c = rr * rr if squared else rr
        return (red * (lam * c + 0.5 * mu * c * c)).sum()

    fp, fs, clamped = loss_derivatives(r, lam, mu, sq, red)
    assert clamped == 0
    assert rel_err(fp, torch.func.grad(f)(r)) < TOL[F64]
    hess = torch.func.hessian(f)(r).reshape(21, 21)
    assert rel_err(fs.reshape(-1), hess.diagonal()) < TOL[F64]
    assert rel_err(hess, torch.diag(hess.diagonal())) == 0.0  # rows are independent


def test_negative_curvature_is_clamped_and_counted():
    r = torch.tensor([[0.1, 2.0]], dtype=F64)
    lam = torch.tensor([-1.0, -1.0], dtype=F64)
    mu = torch.tensor([1.0, 1.0], dtype=F64)
    ones = torch.ones(2, dtype=F64)
    _, fs, clamped = loss_derivatives(r, lam, mu, ones, ones)
    # f'' = 2 lam + 6 mu r^2: -1.94 (clamped to 0) and 22
    assert clamped == 1 and fs[0, 0] == 0.0 and abs(float(fs[0, 1]) - 22.0) < 1e-12


@pytest.mark.parametrize("m, p", [(30, 8), (5, 12)])
def test_step_solves_linear_least_squares(m, p):
    """r = A x - b, f = r^2: one undamped step lands on the least-squares solution (M >= P,
    direct form) or on A x = b (M < P, kernel form)."""
    gen = torch.Generator().manual_seed(m)
    a = torch.randn(m, p, generator=gen, dtype=F64)
    b = torch.randn(m, generator=gen, dtype=F64)
    x0 = torch.randn(p, generator=gen, dtype=F64)
    r = a @ x0 - b
    g = a.T @ (2 * r)  # f' = 2 r
    v = 2 * r / 2**0.5  # f' / sqrt(f'')
    delta = GaussNewton.solve(g, a * 2**0.5, 1e-13, v)  # f'' = 2
    x = x0 + delta
    if m >= p:
        assert rel_err(x, torch.linalg.lstsq(a, b.unsqueeze(1)).solution.squeeze(1)) < 1e-9
    else:
        assert rel_err(a @ x, b) < 1e-9
        # both kernel forms and the direct form agree at finite damping
        direct = torch.linalg.solve(2 * a.T @ a + 0.3 * torch.eye(p, dtype=F64), -g)
        assert rel_err(GaussNewton.solve(g, a * 2**0.5, 0.3, v), direct) < TOL[F64]
        assert rel_err(GaussNewton.solve(g, a * 2**0.5, 0.3), direct) < TOL[F64]


def test_damping_rule():
    al = _al("poisson", n_interior=30, n_boundary=12)
    opt = GaussNewton(al, max_iter=1, damping=1.0)
    before = [t.detach().clone() for t in opt._params]
    real_loss = opt._loss
    start = real_loss()
    # every trial is worse: all max_rejects + 1 trials are rejected, damping grows by 2, 4, 8...
    opt._loss = lambda: start + 1.0
    opt.step()
    state = opt.state[opt._params[0]]
    assert state["rejects"] == 13
    assert state["damping"] == pytest.approx(2.0 ** sum(range(1, 14)))
    for a, b in zip(opt._params, before, strict=True):
        assert torch.equal(a, b)  # rejected steps are undone
    # a real step is accepted and lambda scales by max(1/3, 1 - (2 rho - 1)^3)
    opt._loss = real_loss
    state["damping"] = 1.0
    opt.step()
    rho = state["gain_ratio"]
    assert state["rejects"] == 13  # accepted at the first trial
    assert rho > 0 and opt._loss() < start
    assert state["damping"] == pytest.approx(1.0 * max(1 / 3, 1 - (2 * rho - 1) ** 3))


def test_few_iterations_reduce_the_loss_a_lot():
    al = _al("poisson", n_interior=40, n_boundary=16)
    opt = GaussNewton(al, max_iter=10)
    start = float(al().detach())
    opt.step()
    assert float(al().detach()) < 1e-2 * start


def test_refuses_a_plain_closure():
    with pytest.raises(TypeError, match="pinn"):
        GaussNewton(lambda: torch.zeros(()))
