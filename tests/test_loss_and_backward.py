"""AugmentedLagrangian.loss_and_backward: bitwise what ``loss = al(); loss.backward()`` gives,
without autograd where every block is fused, and exactly that autograd sequence elsewhere."""

from __future__ import annotations

import copy

import pytest
import torch

import fluxkern
from fluxkern import ops
from matrix import device_backends

F64 = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore:block 'curved'.*not a polynomial:UserWarning")


def _problem(device: str, backend: str, periodic: int = 0, nonpolynomial: bool = False):
    """One unpaired group (pde, flux, boundary) and `periodic` paired blocks, each on its own
    pairs (so each its own op call); optionally a block that runs in torch."""
    torch.manual_seed(11)
    x, t = fluxkern.inputs("x t")
    u, q = fluxkern.outputs("u q")
    kw = {"dtype": F64, "device": device}
    net = fluxkern.MLP(2, 2, 8, 2, dtype=F64).to(device)
    pts = torch.rand(9, 2, **kw)
    bnd = torch.rand(4, 2, **kw)
    terms = [
        fluxkern.Objective("pde", q.d(x) + u.d(t) - 1.0, pts),
        fluxkern.Constraint("flux", q - u.d(x), pts),
        fluxkern.Constraint("boundary", u, bnd, multiplier="global"),
    ]
    for k in range(periodic):
        a = torch.rand(3 + k, 2, **kw)
        b = a.clone()
        b[:, 0] += 1.0
        terms.append(fluxkern.Constraint(f"periodic{k}", [u, q], (a, b)))
    if nonpolynomial:
        terms.append(fluxkern.Constraint("curved", fluxkern.sin(u) - 0.1, bnd))
    al = fluxkern.AugmentedLagrangian(net, terms, backend=backend)
    al.update_multipliers()  # multipliers away from their initial values
    return al


def _by_autograd(al):
    loss = al()
    loss.backward()
    return loss.detach()


def _grads(al):
    return [None if p.grad is None else p.grad.clone() for p in al.model.parameters()]


def _count_fused_calls(monkeypatch) -> list[int]:
    calls = [0]
    real = ops.fused_loss_and_grads

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(ops, "fused_loss_and_grads", counting)
    return calls


@pytest.mark.parametrize("device,backend", device_backends())
@pytest.mark.parametrize("periodic", [0, 1, 2, 3])
@pytest.mark.parametrize("accumulate", [False, True])
def test_bitwise_the_autograd_loss_and_gradients(
    device, backend, periodic, accumulate, monkeypatch
):
    al = _problem(device, backend, periodic)
    twin = copy.deepcopy(al)
    assert len(al._groups) == 1 + periodic
    if accumulate:  # backward adds to what .grad holds
        for m in (al, twin):
            for p in m.model.parameters():
                p.grad = torch.full_like(p, 0.125)
    calls = _count_fused_calls(monkeypatch)
    loss = al.loss_and_backward()
    assert calls[0] == (0 if backend == "torch" else 1 + periodic)
    want = _by_autograd(twin)
    assert not loss.requires_grad
    assert torch.equal(loss, want)
    for a, b in zip(_grads(al), _grads(twin), strict=True):
        assert torch.equal(a, b)
    assert al.last_loss == twin.last_loss


@pytest.mark.parametrize("device,backend", device_backends())
def test_a_block_in_torch_takes_the_autograd_path(device, backend, monkeypatch):
    al = _problem(device, backend, periodic=1, nonpolynomial=True)
    twin = copy.deepcopy(al)
    calls = _count_fused_calls(monkeypatch)
    loss = al.loss_and_backward()
    assert calls[0] == 0
    assert torch.equal(loss, _by_autograd(twin))
    for a, b in zip(_grads(al), _grads(twin), strict=True):
        assert torch.equal(a, b)


def test_parameter_hooks_still_run(monkeypatch):
    if "cpu" not in fluxkern.backends():
        pytest.skip("needs the CPU build")
    al = _problem("cpu", "cpu")
    seen = []
    first = next(al.model.parameters())
    handle = first.register_hook(lambda g: seen.append(g.clone()) or g * 2)
    twin = copy.deepcopy(al)
    twin_first = next(twin.model.parameters())
    twin_first.register_hook(lambda g: g * 2)
    calls = _count_fused_calls(monkeypatch)
    al.loss_and_backward()
    assert calls[0] == 0 and len(seen) == 1  # the hook ran: the autograd path was taken
    _by_autograd(twin)
    assert torch.equal(first.grad, twin_first.grad)
    handle.remove()
    al.loss_and_backward()
    assert calls[0] == 1  # no hook left: the fused path again


def test_frozen_parameters_get_no_gradient_and_all_frozen_raises():
    if "cpu" not in fluxkern.backends():
        pytest.skip("needs the CPU build")
    al = _problem("cpu", "cpu", periodic=1)
    params = list(al.model.parameters())
    params[0].requires_grad_(False)
    twin = copy.deepcopy(al)
    al.loss_and_backward()
    _by_autograd(twin)
    assert params[0].grad is None
    for a, b in zip(_grads(al), _grads(twin), strict=True):
        assert (a is None and b is None) or torch.equal(a, b)
    for p in params:
        p.requires_grad_(False)
        p.grad = None
    with pytest.raises(RuntimeError, match="does not require grad"):
        al.loss_and_backward()


def test_points_that_require_grad_take_the_autograd_path(monkeypatch):
    """The fused op refuses gradients for inputs other than the parameters: the same error as
    al().backward(), not a silent gradient that ignores them."""
    if "cpu" not in fluxkern.backends():
        pytest.skip("needs the CPU build")
    al = _problem("cpu", "cpu")
    al._groups[0].x.requires_grad_(True)
    calls = _count_fused_calls(monkeypatch)
    with pytest.raises(RuntimeError) as fast:
        al.loss_and_backward()
    with pytest.raises(RuntimeError) as slow:
        al().backward()
    assert calls[0] == 0 and str(fast.value) == str(slow.value)


def test_the_trainer_closes_with_it(monkeypatch):
    if "cpu" not in fluxkern.backends():
        pytest.skip("needs the CPU build")
    al = _problem("cpu", "cpu")
    opt = torch.optim.LBFGS(al.model.parameters(), max_iter=3, line_search_fn="strong_wolfe")
    trainer = fluxkern.Trainer(al.model, al, opt)
    calls = _count_fused_calls(monkeypatch)
    record = trainer.step()
    assert calls[0] == record.evals >= 2
