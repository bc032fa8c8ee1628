"""Output scaling (SolveOptions.output_scale, MLP output_scale): the field is the raw output times
its scale; every path (forward, the fused jet and loss, their twin, to_sequential) sees the same
network, gradients reach the raw layer, states round-trip, options and the command line check
their input, and on a problem whose flux is 1e-4 times the solution it trains closer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import fluxkern as fk
from fluxkern.cli import main as cli_main
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.nn import MLP
from fluxkern.options import effective_options
from fluxkern.resume import run_identity
from matrix import TOL, device_backends, rel_err
from test_stall import small_flux

F64 = torch.float64
SCALE = [1.0, 1e-4, -3.0]


def problem_file(tmp_path: Path) -> Path:
    """small_flux(1e-4) as a problem file for the command line."""
    src = tmp_path / "flux.py"
    here = str(Path(__file__).parent)
    src.write_text(
        f"import sys\nsys.path.insert(0, {here!r})\nfrom test_stall import small_flux\n"
        "problem = small_flux(1e-4)\n"
    )
    return src


def nets(dtype: torch.dtype = F64) -> tuple[MLP, MLP]:
    """The same weights with and without an output scale."""
    torch.manual_seed(0)
    plain = MLP(2, 3, 16, 3, dtype=dtype)
    scaled = MLP(2, 3, 16, 3, output_scale=SCALE, dtype=dtype)
    scaled.load_state_dict({**plain.state_dict(), "output_scale": torch.tensor(SCALE)})
    return plain, scaled


@pytest.mark.parametrize("device,backend", device_backends())
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_jet_is_the_scaled_network(device, backend, dtype):
    plain, scaled = (m.to(device) for m in nets(dtype))
    x = torch.rand(37, 2, dtype=dtype, device=device)
    c = torch.tensor(SCALE, dtype=dtype, device=device)
    y0, j0 = plain.jet(x, backend="torch")
    y, j = scaled.jet(x, backend=backend)
    assert rel_err(y, y0 * c) < TOL[dtype]
    assert rel_err(j, j0 * c[:, None]) < TOL[dtype]
    assert rel_err(scaled(x), y0 * c) < TOL[dtype]
    assert rel_err(scaled.to_sequential()(x), y0 * c) < TOL[dtype]


def test_jacobian_and_weight_gradients_match_torch_func():
    _, scaled = nets()
    x = torch.rand(11, 2, dtype=F64)
    jac = torch.func.vmap(torch.func.jacrev(lambda p: scaled(p[None])[0]))(x)  # [N, m, d]
    _, j = scaled.jet(x, backend="cpu")
    assert rel_err(j, jac) < TOL[F64]
    # gradients of a loss of (y, J) reach the raw output layer through the fold
    y, j = scaled.jet(x, backend="cpu")
    (y.square().sum() + j.square().sum()).backward()
    fused = [p.grad.clone() for p in scaled.parameters()]
    scaled.zero_grad()
    y, j = scaled.jet(x, backend="torch")
    (y.square().sum() + j.square().sum()).backward()
    for a, b in zip(fused, [p.grad for p in scaled.parameters()], strict=True):
        assert rel_err(a, b) < TOL[F64]
    last = scaled.layers[-1].weight.grad
    assert last[1].abs().max() < 1e-3 * last[0].abs().max()  # scaled by 1e-4: small gradient


def test_fused_loss_gradient_matches_the_twin():
    """The augmented Lagrangian's gradient with a scaled network: the fused path (through
    autograd, the fold is not a leaf) against the pure-torch twin."""
    problem = small_flux(1e-4)
    opts = effective_options(problem, output_scale={"q": 1e-4})
    blocks = problem.flux_terms(0, F64, torch.device("cpu"))
    grads = []
    for backend in ("cpu", "torch"):
        model = fk.solver.build_model(problem, "flux", F64, torch.device("cpu"), opts.output_scale)
        torch.manual_seed(1)
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.3)
        al = AugmentedLagrangian(model, blocks, backend=backend)
        al.loss_and_backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        assert rel_err(a, b) < TOL[F64]


def test_state_round_trip_and_old_states():
    _, scaled = nets()
    fresh = MLP(2, 3, 16, 3, dtype=F64)
    fresh.load_state_dict(scaled.state_dict())  # the scale travels with the state
    assert fresh.output_scaled and torch.equal(fresh.output_scale, scaled.output_scale)
    x = torch.rand(5, 2, dtype=F64)
    assert torch.equal(fresh(x), scaled(x))
    old = {k: v for k, v in MLP(2, 3, 16, 3, dtype=F64).state_dict().items() if k != "output_scale"}
    fresh.load_state_dict(old)  # saved before output_scale existed: scale 1
    assert "output_scale" not in old  # the caller's dict is not changed
    assert not fresh.output_scaled and torch.equal(fresh.output_scale, torch.ones(3, dtype=F64))
    for bad in ([1.0, 0.0, 1.0], [1.0, math.inf, 1.0], [1.0, 1.0]):
        with pytest.raises(ValueError, match="output_scale"):
            MLP(2, 3, 16, 3, output_scale=bad)


def test_options_check_names_values_and_optimizer():
    problem = small_flux(1e-4)
    assert effective_options(problem, output_scale={"q": 1e-4}).output_scale == {"q": 1e-4}
    with pytest.raises(ValueError, match="has no output 'w'; its outputs: u, q"):
        effective_options(problem, output_scale={"w": 2.0})
    with pytest.raises(ValueError, match="finite non-zero"):
        effective_options(problem, output_scale={"q": 0})
    with pytest.raises(ValueError, match="not supported with gauss_newton"):
        effective_options(problem, output_scale={"q": 1e-4}, optimizer="gauss_newton")
    plain = run_identity(problem, vars(effective_options(problem)))
    scaled = run_identity(problem, vars(effective_options(problem, output_scale={"q": 1e-4})))
    assert "output_scale" not in plain and scaled["output_scale"] == {"q": 1e-4}


def test_command_line(tmp_path, capsys):
    src = problem_file(tmp_path)
    out = tmp_path / "run"
    code = cli_main(
        ["solve", str(src), "--epochs", "3", "--output-scale", "q=1e-4", "--out", str(out),
         "--no-progress", "--no-plots"]
    )  # fmt: skip
    assert code == 0
    saved = torch.load(out / "model.pt", weights_only=True)
    assert saved["options"]["output_scale"] == {"q": 1e-4}
    assert saved["model"]["output_scale"].tolist() == [1.0, 1e-4]
    # --print-config writes it, and the file gives it back
    capsys.readouterr()
    assert cli_main(["solve", str(src), "--output-scale", "q=1e-4", "--print-config"]) == 0
    cfg = tmp_path / "c.toml"
    cfg.write_text(capsys.readouterr().out)
    assert "[output_scale]  # command line" in cfg.read_text()
    assert cli_main(["solve", str(src), "--config", str(cfg), "--print-config"]) == 0
    assert f"[output_scale]  # config {cfg}; 1 otherwise\nq = 0.0001" in capsys.readouterr().out
    assert cli_main(["solve", str(src), "--output-scale", "q=small"]) == 2
    assert "--output-scale takes NAME=SCALE with SCALE a number" in capsys.readouterr().err


def test_a_small_flux_trains_closer_scaled():
    """-(k u')' = f with k = 1e-4: q is ~1e-4 while u is ~1. Measured (300 epochs, auto,
    seeds 0-2, docs/guide/flux-forms.md): u 2.5e-6 / 3.9e-6 / 8.7e-6 unscaled against 1.6e-7 /
    3.2e-7 / 6.6e-8 scaled; here 30
    epochs on 64 points, seed 0: 1.9e-1 against 8.0e-3 when written."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as measured; two threads of tiny GEMMs only add overhead here
    try:
        errors = [
            fk.solve(small_flux(1e-4), epochs=30, progress=False, plots=False, output_scale=c)
            for c in ({}, {"q": 1e-4})
        ]
    finally:
        torch.set_num_threads(threads)
    u = [r["errors"]["u"] for r in errors]
    assert u[1] < u[0] / 3, u


def test_gradients_without_autograd_are_bitwise_autograd_s():
    """With a scaled last layer the fused path still skips autograd (the gradient reaches the
    raw layer times the scale), bitwise as loss = al(); loss.backward() gives it."""
    problem = small_flux(1e-4)
    opts = effective_options(problem, output_scale={"q": 1e-4})
    blocks = problem.flux_terms(0, F64, torch.device("cpu"))
    model = fk.solver.build_model(problem, "flux", F64, torch.device("cpu"), opts.output_scale)
    al = AugmentedLagrangian(model, blocks, backend="cpu")
    assert al._gradients_without_autograd(model.spec())
    al.loss_and_backward()
    fast = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    al().backward()
    for a, p in zip(fast, model.parameters(), strict=True):
        assert torch.equal(a, p.grad)
    assert model.layers[-1].weight.grad[1].abs().max() > 0


def test_a_resume_with_another_output_scale_is_refused(tmp_path, capsys):
    """The scale is part of the run: a checkpoint of a scaled run does not continue unscaled,
    nor one of an unscaled run scaled (its buffer would come back from the checkpoint)."""
    src = problem_file(tmp_path)
    quiet = ["--no-progress", "--no-plots"]
    for first, second in ((["--output-scale", "q=1e-4"], []), ([], ["--output-scale", "q=1e-4"])):
        out = str(tmp_path / f"run{len(first)}")
        assert cli_main(["solve", str(src), "--epochs", "2", "--out", out, *first, *quiet]) == 0
        capsys.readouterr()
        code = cli_main(["solve", str(src), "--epochs", "3", "--out", out, "--resume", *second])
        assert code == 2
        assert "resume: output scale differs" in capsys.readouterr().err
    code = cli_main(
        ["solve", str(src), "--epochs", "3", "--out", str(tmp_path / "run2"), "--resume"]
        + ["--output-scale", "q=1e-4", *quiet]
    )
    assert code == 0  # the same scale continues
