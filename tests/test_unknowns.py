"""Trainable unknown constants (fluxkern.unknown): the fused op's coefficient gradient against the
pure-torch twin and torch.func, the Gauss-Newton Jacobian columns, every optimizer, checkpoints."""

from __future__ import annotations

import pytest
import torch

import fluxkern as fk
from fluxkern import reference
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.program import compile_group
from fluxkern.residual_terms import parameter_vector
from fluxkern.settings import cpu_kernel
from fluxkern.unknowns import UnknownSet, unknown
from matrix import DEVICES, TOL, device_backends, rel_err

x, t = fk.inputs("x t")
u, q = fk.outputs("u q")
g = fk.data("g")


def _terms(n: int, dtype: torch.dtype, paired: bool = False, seed: int = 0) -> list:
    gen = torch.Generator().manual_seed(seed)
    k = unknown("k", init=0.7, positive=True)
    c = unknown("c", init=-0.4)
    pts = torch.rand(n, 2, generator=gen, dtype=dtype)
    obs = pts[: max(n // 3, 1)]
    out = [
        fk.Objective("pde", u.d(t) - k * q.d(x) + c * c * u * k - x * c, pts),
        fk.Constraint("flux", q - u.d(x), pts),
        fk.Constraint("obs", k * u - g, obs, data={"g": torch.sin(obs[:, 0])}, form="signed"),
    ]
    if paired:
        a = torch.rand(5, 2, generator=gen, dtype=dtype)
        b = torch.rand(5, 2, generator=gen, dtype=dtype)
        out.append(fk.Constraint("per", c * u + k * q, (a, b)))
    return out


def _grads(model: fk.MLP) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize(("device", "backend"), device_backends())
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n", [1, 7, 45])
def test_unknown_gradients_match_the_twin(device, backend, dtype, n):
    """The loss gradient of the network and of the unknowns: fused op == torch twin (float64 to
    1e-10; float32 against the float64 twin)."""
    torch.manual_seed(1)
    model = fk.MLP(2, 2, 9, 2, dtype=torch.float64, device=device)
    terms = _terms(n, torch.float64, paired=True)
    ref = AugmentedLagrangian(model, terms, backend="torch")
    model.zero_grad()
    ref().backward()
    want = _grads(model)
    assert model.unknowns.raw["k"].grad.abs() > 0 and model.unknowns.raw["c"].grad.abs() > 0
    m2 = fk.MLP(2, 2, 9, 2, dtype=dtype, device=device)
    m2.load_state_dict({k_: v.to(dtype) for k_, v in model.state_dict().items()}, strict=False)
    al = AugmentedLagrangian(m2, _terms(n, torch.float64, paired=True), backend=backend)
    m2.load_state_dict({k_: v.to(dtype) for k_, v in model.state_dict().items()})
    kernels = ["tile", "gemm"] if backend == "cpu" else [None]
    for kern in kernels:
        for route in ("call", "evaluate"):
            m2.zero_grad()
            if kern is None:
                _run(al, route)
            else:
                with cpu_kernel(kern):
                    _run(al, route)
            assert rel_err(_grads(m2), want) < TOL[dtype], (kern, route)


def _run(al, route):
    if route == "call":
        al().backward()
    else:
        al.evaluate(backward=True)


@pytest.mark.parametrize("device", DEVICES)
def test_grad_coef_of_the_op_matches_torch_func(device):
    """The op's grad_coef [M] against torch.func.grad of the twin's loss with respect to coef."""
    torch.manual_seed(2)
    model = fk.MLP(2, 2, 7, 2, dtype=torch.float64, device=device)
    terms = _terms(13, torch.float64)
    al = AugmentedLagrangian(model, terms, backend="torch")
    g0 = al._groups[0]
    program = g0.program.with_unknowns(model.unknowns.values())
    spec = model.spec()
    lam, mu = al._group_lam_mu(g0)
    mu = mu + 0.3  # a penalty too

    def loss_of(coef):
        return reference.block_loss(
            type(program)(**{**program.__dict__, "coef": coef}), g0.x, spec, lam, mu
        )[0]

    coef = program.coef.detach()
    want = torch.func.grad(loss_of)(coef)
    if device not in fk.backends():
        pytest.skip(f"no fused {device} backend")
    args = program.op_args(g0.x, spec, lam, mu)
    assert len(args) == 16 and args[15] is True  # coef requires grad: coef_grad
    args[8] = coef
    with torch.no_grad():
        loss, _, _, _, got = torch.ops.fluxkern.block_loss(*args)
    assert got.shape == coef.shape
    assert rel_err(got, want) < TOL[torch.float64]
    assert rel_err(loss, loss_of(coef)) < TOL[torch.float64]
    assert torch.ops.fluxkern.block_loss(*args[:15])[4].numel() == 0  # coef_grad=False


@pytest.mark.parametrize(("device", "backend"), device_backends())
def test_gauss_newton_columns_match_torch_func(device, backend):
    """residual_terms' Jacobian columns of the unknowns' raw parameters == torch.func.jacrev."""
    torch.manual_seed(3)
    model = fk.MLP(2, 2, 6, 2, dtype=torch.float64, device=device)
    terms = _terms(11, torch.float64, paired=True)
    al = AugmentedLagrangian(model, terms, backend=backend)
    raw = torch.stack([model.unknowns.raw[n].detach() for n in model.unknowns.names])
    theta = parameter_vector(model.spec())
    spec = model.spec()
    for term, block in zip(al.residual_terms(), al.terms, strict=True):
        bound = al.bound[block.name]

        def res(vec, bound=bound):
            sset = model.unknowns
            env = {}
            for i, n in enumerate(sset.names):
                v = vec[i].exp() if sset.symbols[n].positive else vec[i]
                env[f"unknown:{n}"] = v
            y, jac = reference.mlp_jet(bound.x, spec)
            return bound.residuals_torch(y, jac, env)

        want = torch.func.jacrev(res)(raw)  # [N, R, U]
        assert term.jac.shape[-1] == theta.numel() + raw.numel()
        assert rel_err(term.jac[..., theta.numel() :], want) < TOL[torch.float64], block.name


def test_non_polynomial_expression_uses_unknowns_through_autograd():
    k = unknown("k", init=2.0)
    pts = torch.rand(9, 2, dtype=torch.float64)
    model = fk.MLP(2, 2, 5, 1, dtype=torch.float64)
    with pytest.warns(UserWarning, match="runs in torch"):
        al = AugmentedLagrangian(model, [fk.Objective("nl", fk.sin(k * u) - x, pts)], backend="cpu")
    al().backward()
    y = model(pts)[:, 0]
    kk = model.unknowns.value("k").detach().requires_grad_(True)
    ((torch.sin(kk * y) - pts[:, 0]) ** 2).mean().backward()
    assert rel_err(model.unknowns.raw["k"].grad, kk.grad) < 1e-12


def test_unknown_errors_are_one_line():
    for bad, match in [
        (lambda: unknown("1k"), "identifier"),
        (lambda: unknown("k", init=float("nan")), "finite"),
        (lambda: unknown("k", init=0.0, positive=True), "init > 0"),
    ]:
        with pytest.raises(ValueError, match=match) as info:
            bad()
        assert "\n" not in str(info.value)
    k1, k2 = unknown("k", init=1.0), unknown("k", init=2.0)
    with pytest.raises(ValueError, match="different symbols are named 'k'"):
        _ = k1 * u + k2 * q
    seq = torch.nn.Sequential(torch.nn.Linear(1, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    with pytest.raises(TypeError, match="need a fluxkern.MLP"):
        AugmentedLagrangian(seq, [fk.Objective("a", k1 * u, torch.rand(3, 1))])


def test_positive_unknown_stays_positive_and_values():
    s = UnknownSet([unknown("k", init=0.5, positive=True), unknown("c", init=-2.0, truth=-2.5)])
    with torch.no_grad():
        s.raw["k"].fill_(-50.0)
    assert float(s.value("k").detach()) > 0
    assert s.floats()["c"] == -2.0
    assert abs(s.errors()["c"] - 0.2) < 1e-15
    assert "k" not in s.errors()


def test_compile_group_factors():
    k = unknown("k", init=3.0)
    pts = torch.rand(4, 1, dtype=torch.float64)
    xx = fk.inputs("xx")
    uu = fk.outputs("uu")
    b = fk.Objective("a", k * k * uu + 2 * uu.d(xx) + k * xx, pts).bind(
        1, 1, torch.float64, torch.device("cpu")
    )
    _, prog = compile_group([b], torch.float64, torch.device("cpu"))
    assert prog.unknowns == ("k",)
    coef = prog.with_unknowns({"k": torch.tensor(3.0, dtype=torch.float64)}).coef
    assert sorted(coef.tolist()) == [2.0, 3.0, 9.0]


def test_opcheck_with_coef_grad():
    """torch.library.opcheck of the op with coef_grad=True (fake kernel, autograd formula)."""
    if "cpu" not in fk.backends():
        pytest.skip("no fused cpu backend")
    torch.manual_seed(4)
    model = fk.MLP(2, 2, 5, 2, dtype=torch.float64)
    al = AugmentedLagrangian(model, _terms(6, torch.float64), backend="cpu")
    g0 = al._groups[0]
    program = g0.program.with_unknowns(model.unknowns.values())
    lam, mu = al._group_lam_mu(g0)
    args = program.op_args(g0.x, model.spec(), lam, mu)
    args[8] = args[8].detach().requires_grad_(True)
    torch.library.opcheck(torch.ops.fluxkern.block_loss.default, tuple(args))


def _inverse_problem(seed: int = 0):
    """u = sin(pi x) exp(-kappa pi^2 t) with kappa = 0.3 unknown, from 30 samples of u."""
    import math

    k = unknown("kappa", init=1.0, positive=True, truth=0.3)
    gen = torch.Generator().manual_seed(seed)
    pts = torch.rand(300, 2, generator=gen, dtype=torch.float64)
    obs = torch.rand(30, 2, generator=gen, dtype=torch.float64)

    def exact(p):
        return torch.sin(math.pi * p[:, 0]) * torch.exp(-0.3 * math.pi**2 * p[:, 1])

    terms = [
        fk.Objective("pde", u.d(t) - k * q.d(x), pts),
        fk.Constraint("flux", q - u.d(x), pts),
        fk.Constraint("obs", u - g, obs, data={"g": exact(obs)}),
    ]
    return terms


@pytest.mark.parametrize("name", ["lbfgs", "ssbroyden", "adam", "gauss_newton"])
def test_every_optimizer_moves_the_unknown(name):
    """Each optimizer takes the unknown with the weights: kappa moves from 1 toward 0.3."""
    from fluxkern.optim.by_name import make_optimizer

    torch.manual_seed(0)
    model = fk.MLP(2, 2, 10, 2, dtype=torch.float64)
    al = AugmentedLagrangian(model, _inverse_problem(), backend="cpu")
    params = list(model.parameters())
    assert any(p is model.unknowns.raw["kappa"] for p in params)
    opt = make_optimizer(name, params, al, 1e-2 if name == "adam" else None, {})
    trainer = fk.Trainer(model, al, opt)
    trainer.fit(epochs=30 if name == "adam" else 8)
    kappa = model.unknowns.floats()["kappa"]
    assert kappa < 0.9, (name, kappa)
