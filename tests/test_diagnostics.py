"""Diagnostics: gradient sensitivity (reproducible; the three losses are the ones claimed), the
loss landscape (the origin is the trained loss) and the `fluxkern diagnose` command's errors."""

from __future__ import annotations

import os

import pytest
import torch

from fluxkern import cli, diagnostics, problems, solver
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.nn import MLP
from fluxkern.problems.pinn import grad

F64 = torch.float64
CPU = torch.device("cpu")
FAST = {"weight_magnitudes": (1e-3, 1e-1), "output_magnitudes": (1e-3,)}


def small(name: str = "poisson", **defaults):
    """A problem with few points and a small network (as tests/test_solver.py small_poisson)."""
    p = problems.get(name)
    counts = {
        "poisson": {"n_interior": 64, "n_boundary": 32},
        "helmholtz": {"n_interior": 64, "n_face": 8},
        "composite_heat": {"n_interior": 64, "n_side": 16, "n_initial": 16},
    }[name]
    p.defaults = {**p.defaults, **counts, **defaults}
    p.width, p.depth = 8, 2
    return p


def _strip(res):
    return {k: v for k, v in res.items() if k not in ("time_s", "machine")}


def test_sensitivity_is_reproducible_with_a_seed(tmp_path):
    a = diagnostics.gradient_sensitivity(small(), seed=3, samples=3, out=str(tmp_path), **FAST)
    b = diagnostics.gradient_sensitivity(small(), seed=3, samples=3, **FAST)
    assert _strip(a) == _strip(b)
    c = diagnostics.gradient_sensitivity(small(), seed=4, samples=3, **FAST)
    assert c["orders"]["2"]["weight_perturbation"] != a["orders"]["2"]["weight_perturbation"]
    for f in ("gradients.json", "sensitivity.png", "histograms.png"):
        assert os.path.getsize(tmp_path / f) > 0
    for order in ("0", "1", "2"):
        r = a["orders"][order]
        assert len(r["weight_perturbation"]["samples"]) == 2
        assert all(len(s) == 3 for s in r["weight_perturbation"]["samples"])
        assert len(r["layers"]) == 3  # two hidden layers and the output layer
        for q in ("q25", "median", "q75"):
            assert all(v > 0 for v in r["output_perturbation"][q])
        assert -1 <= r["cosine_two_draws"] <= 1


@pytest.mark.parametrize("name", ["poisson", "helmholtz", "composite_heat"])
def test_the_three_losses_are_the_ones_claimed(name):
    p = small(name)
    torch.manual_seed(0)
    model = solver.build_model(p, "flux", F64, CPU)
    losses = diagnostics._Losses(p, model, 0, F64, CPU)

    # order 0: mean squared error of u at every distinct point of the flux form
    terms = p.flux_terms(0, F64, CPU)
    pts = []
    for t in terms:
        if not any(q.shape == t.points.shape and torch.equal(q, t.points) for q in pts):
            pts.append(t.points)
    x = torch.cat(pts)
    mse = ((model(x)[:, 0] - p.exact(x)["u"]) ** 2).mean()
    assert torch.allclose(losses.loss(0), mse, rtol=1e-12, atol=0)

    # order 1: the augmented Lagrangian with initial multipliers (the torch twin as oracle),
    # loss and gradient; the torch path used under output perturbations agrees with al()
    opts = p.defaults
    ref = AugmentedLagrangian(
        model, terms, dual=opts["dual"], backend="torch", **opts["dual_options"]
    )
    g1, l1 = diagnostics._gradient(model, lambda: losses.loss(1))
    g1_ref, l1_ref = diagnostics._gradient(model, ref)
    assert l1 == pytest.approx(l1_ref, rel=1e-10)
    assert torch.allclose(g1, g1_ref, rtol=1e-9, atol=1e-12 * g1_ref.norm())
    torch_path = diagnostics._al_torch(losses.al, model, None).detach()
    assert float(torch_path) == pytest.approx(l1_ref, rel=1e-10)

    # order 2: the PINN loss of a one-output network with the same hidden layers and u's row
    pinn_net = MLP(
        2,
        1,
        8,
        2,
        p.activation,
        input_shift=model.input_shift,
        input_scale=model.input_scale,
        dtype=F64,
    )
    with torch.no_grad():
        for a, b in zip(pinn_net.layers[:-1], model.layers[:-1], strict=True):
            a.weight.copy_(b.weight)
            a.bias.copy_(b.bias)
        pinn_net.layers[-1].weight.copy_(model.layers[-1].weight[:1])
        pinn_net.layers[-1].bias.copy_(model.layers[-1].bias[:1])
    pinn = p.pinn_loss(pinn_net, 0, F64, CPU)
    g2, l2 = diagnostics._gradient(model, lambda: losses.loss(2))
    g2_ref, l2_ref = diagnostics._gradient(pinn_net, pinn)
    assert l2 == pytest.approx(l2_ref, rel=1e-12)
    # the same gradient on the shared entries; zero on the flux outputs' rows
    w_last = model.layers[-1].weight.numel()
    n_hidden = sum(q.numel() for q in model.layers[:-1].parameters())
    assert torch.allclose(g2[:n_hidden], g2_ref[:n_hidden], rtol=1e-10, atol=1e-14)
    last_w = g2[n_hidden : n_hidden + w_last].reshape(model.layers[-1].weight.shape)
    assert torch.allclose(last_w[0], g2_ref[n_hidden : n_hidden + 8], rtol=1e-10, atol=1e-14)
    assert not last_w[1:].any()


def test_output_perturbation_jacobian_and_perturbed_flux_loss():
    p = small("poisson")
    torch.manual_seed(1)
    model = solver.build_model(p, "flux", F64, CPU)
    gen = torch.Generator().manual_seed(5)
    pert = diagnostics.OutputPerturbation(3, model.input_shift, model.input_scale, gen)
    x = torch.rand(7, 2, dtype=F64)
    jac = torch.func.vmap(torch.func.jacrev(lambda z: pert.value(z[None])[0]))(x)
    assert torch.allclose(pert.jacobian(x), jac, rtol=1e-12, atol=1e-12)

    # order 1 under y + eps p, against the poisson flux form written out with autograd
    losses = diagnostics._Losses(p, model, 0, F64, CPU)
    eps = 0.05
    got = losses.loss(1, (eps, pert)).detach()
    terms = {t.name: t for t in p.flux_terms(0, F64, CPU)}
    xi = terms["pde"].points.clone().requires_grad_(True)
    y = model(xi) + eps * pert.value(xi)
    du, dq1, dq2 = (grad(y[:, k], xi) for k in range(3))
    f = terms["pde"].data["f"]
    pde = ((dq1[:, 0] + dq2[:, 1] + f) ** 2).mean()
    flux = ((y[:, 1] - du[:, 0]) ** 2 + (y[:, 2] - du[:, 1]) ** 2).mean()  # lambda0 = 1
    xb = terms["boundary"].points
    bnd = ((model(xb)[:, 0] + eps * pert.value(xb)[:, 0]) ** 2).mean()
    assert float(got) == pytest.approx(float((pde + flux + bnd).detach()), rel=1e-10)
    # order 0 and 2 see the perturbation as well
    assert float(losses.loss(0, (eps, pert)).detach()) != float(losses.loss(0).detach())
    assert float(losses.loss(2, (eps, pert)).detach()) != float(losses.loss(2).detach())


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    dirs = {}
    for form in ("flux", "pinn"):
        out = str(root / form)
        solver.solve(small(), epochs=3, formulation=form, progress=False, plots=False, out=out)
        dirs[form] = out
    return dirs


def _trained_loss(run_dir: str) -> float:
    """The run's training loss at its saved weights, with the torch twin / autograd."""
    ck = torch.load(os.path.join(run_dir, "model.pt"), weights_only=False)
    p = small()
    model = solver.build_model(p, ck["formulation"], F64, CPU)
    model.load_state_dict(ck["model"])
    if ck["formulation"] == "pinn":
        return float(p.pinn_loss(model, 0, F64, CPU)().detach())
    al = AugmentedLagrangian(
        model,
        p.flux_terms(0, F64, CPU),
        dual=ck["dual"]["dual"],
        backend="torch",
        **ck["dual"]["options"],
    )
    al.load_state_dict(ck["dual"])
    return float(al().detach())


def test_landscape_at_the_origin_is_the_trained_loss(tiny_runs, tmp_path):
    res = diagnostics.loss_landscape(
        tiny_runs["flux"], grid=5, out=str(tmp_path), compare=tiny_runs["pinn"], problem=small()
    )
    for r, form in ((res, "flux"), (res["compare"], "pinn")):
        assert r["formulation"] == form
        trained = _trained_loss(tiny_runs[form])
        assert r["origin_loss"] == pytest.approx(trained, rel=1e-10)
        assert r["loss"][2][2] == r["origin_loss"]  # the grid's centre is the origin
        assert len(r["loss"]) == 5 and all(len(row) == 5 for row in r["loss"])
        assert max(max(row) for row in r["loss"]) > r["origin_loss"]
    assert res["backend"] != "torch"  # the fused op, where the extension is built
    assert os.path.getsize(tmp_path / "landscape.png") > 0
    assert os.path.getsize(tmp_path / "landscape.json") > 0
    # the same directions for the same seed
    again = diagnostics.loss_landscape(tiny_runs["flux"], grid=5, problem=small())
    assert again["loss"] == res["loss"]


def test_landscape_says_when_the_problem_does_not_fit_the_run(tiny_runs):
    with pytest.raises(ValueError, match="pass the problem instance the run used"):
        diagnostics.loss_landscape(tiny_runs["flux"], grid=2)
    with pytest.raises(ValueError, match="grid must be an integer >= 2"):
        diagnostics.loss_landscape(tiny_runs["flux"], grid=1)


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv,match",
    [
        (["diagnose", "gradients", "nope"], "unknown problem 'nope'; choose from poisson"),
        (["diagnose", "gradients", "poisson", "--samples", "0"], "--samples must be >= 1"),
        (["diagnose", "gradients", "poisson", "--seed", "x"], "invalid int value: 'x'"),
        (["diagnose", "landscape"], "the following arguments are required: --run"),
        (["diagnose", "landscape", "--run", "/nonexistent/run"], "does not exist"),
        (["diagnose", "landscape", "--run", "{tmp}"], "has no model.pt"),
        (["diagnose", "landscape", "--run", "{tmp}", "--grid", "1"], "--grid must be >= 2"),
        (["diagnose", "landscape", "--run", "{tmp}", "--span", "0"], "--span must be > 0"),
        (["diagnose", "frobnicate"], "invalid choice: 'frobnicate'"),
        (["diagnose"], "diagnose: choose gradients or landscape"),
    ],
)
def test_bad_diagnose_command_lines_exit_2_with_one_line(capsys, tmp_path, argv, match):
    code, _, err = run(capsys, *(a.replace("{tmp}", str(tmp_path)) for a in argv))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and match in err
    assert "Traceback" not in err


def test_diagnose_commands_run(capsys, tmp_path):
    # a registry-sized poisson run with no training: model.pt at initialisation
    run_dir = str(tmp_path / "init")
    solver.solve("poisson", epochs=0, progress=False, plots=False, out=run_dir)
    code, out, err = run(capsys, "diagnose", "landscape", "--run", run_dir, "--grid", "3")
    assert code == 0, err
    assert "poisson (flux" in out and os.path.exists(
        os.path.join(run_dir, "landscape", "landscape.png")
    )
    code, _, err = run(
        capsys, "diagnose", "landscape", "--run", run_dir, "--compare", str(tmp_path / "none")
    )
    assert code == 2 and "does not exist" in err
    out_dir = str(tmp_path / "grads")
    code, out, err = run(
        capsys, "diagnose", "gradients", "poisson", "--samples", "1", "--out", out_dir
    )
    assert code == 0, err
    assert "order 2:" in out and os.path.exists(os.path.join(out_dir, "gradients.json"))


def test_sensitivity_at_a_trained_run(tiny_runs):
    res = diagnostics.gradient_sensitivity(small(), samples=1, run=tiny_runs["flux"], **FAST)
    assert res["at"].startswith("the trained weights")
    # order 1 is the training loss with the trained multipliers
    assert res["orders"]["1"]["loss"] == pytest.approx(_trained_loss(tiny_runs["flux"]), rel=1e-10)
    init = diagnostics.gradient_sensitivity(small(), samples=1, **FAST)
    assert res["orders"]["0"]["loss"] < init["orders"]["0"]["loss"]
    with pytest.raises(ValueError, match="is a pinn run"):
        diagnostics.gradient_sensitivity(small(), samples=1, run=tiny_runs["pinn"], **FAST)
