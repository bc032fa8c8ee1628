"""AugmentedLagrangian.evaluate (the one way to the loss, C and gradients an optimizer and the dual
update need), update_multipliers(evaluation), and the closure optimizers' report that their last
closure call was at the step's result (what lets the Trainer hand that evaluation on)."""

from __future__ import annotations

import copy

import pytest
import torch

import fluxkern
from matrix import device_backends

F64 = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore:block 'curved'.*not a polynomial:UserWarning")


def _problem(device: str, backend: str, nonpolynomial: bool = False):
    torch.manual_seed(3)
    x, t = fluxkern.inputs("x t")
    u, q = fluxkern.outputs("u q")
    kw = {"dtype": F64, "device": device}
    net = fluxkern.MLP(2, 2, 8, 2, dtype=F64).to(device)
    pts, bnd = torch.rand(11, 2, **kw), torch.rand(5, 2, **kw)
    terms = [
        fluxkern.Objective("pde", q.d(x) + u.d(t) - 1.0, pts),
        fluxkern.Constraint("flux", q - u.d(x), pts),
        fluxkern.Constraint("boundary", u - 0.5, bnd, multiplier="global"),
    ]
    if nonpolynomial:
        terms.append(fluxkern.Constraint("curved", fluxkern.sin(u) - 0.1, bnd))
    al = fluxkern.AugmentedLagrangian(net, terms, backend=backend)
    al.update_multipliers()  # multipliers away from their initial values
    return al


def _grads(al):
    return [None if p.grad is None else p.grad.clone() for p in al.model.parameters()]


@pytest.mark.parametrize("device,backend", device_backends())
@pytest.mark.parametrize("nonpolynomial", [False, True])
def test_evaluate_is_the_call_and_its_backward_bitwise(device, backend, nonpolynomial):
    al = _problem(device, backend, nonpolynomial)
    twin = copy.deepcopy(al)
    ev = al.evaluate(backward=True)
    loss = twin()
    loss.backward()
    assert ev.backward and not ev.loss.requires_grad
    assert torch.equal(ev.loss, loss.detach())
    assert al.last_loss == twin.last_loss == float(ev.loss)
    for a, b in zip(_grads(al), _grads(twin), strict=True):
        assert torch.equal(a, b)
    # without backward: the same numbers, no gradient touched, last_loss kept
    al.model.zero_grad(set_to_none=True)
    al.last_loss = None
    look = al.evaluate()
    assert not look.backward and al.last_loss is None
    assert all(p.grad is None for p in al.model.parameters())
    assert torch.equal(look.loss, ev.loss)
    assert set(look.values) == set(ev.values) == {t.name for t in al.terms}
    for name, c in look.values.items():
        assert torch.equal(c, ev.values[name]) and not c.requires_grad
    for name, c in al.constraint_values().items():
        assert torch.equal(c, ev.values[name])


def test_post_accumulate_grad_hooks_run():
    if "cpu" not in fluxkern.backends():
        pytest.skip("needs the CPU build")
    al = _problem("cpu", "cpu")
    seen = []
    last = list(al.model.parameters())[-1]
    handle = last.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.clone()))
    twin = copy.deepcopy(al)
    al.evaluate(backward=True)
    assert len(seen) == 1  # the autograd route ran the hook
    twin().backward()
    for a, b in zip(_grads(al), _grads(twin), strict=True):
        assert torch.equal(a, b)
    handle.remove()
    al.evaluate(backward=True)
    assert len(seen) == 1


def test_update_refuses_an_evaluation_made_with_other_multipliers_or_blocks():
    al = _problem("cpu", "torch")
    other = copy.deepcopy(al)
    with pytest.raises(ValueError, match="other multipliers or blocks"):
        al.update_multipliers(other.evaluate())
    ev = al.evaluate()
    al.load_state_dict(al.state_dict())
    with pytest.raises(ValueError, match="other multipliers or blocks"):
        al.update_multipliers(ev)
    ev = al.evaluate()
    al.set_terms(al.terms, pointwise="keep")
    with pytest.raises(ValueError, match="other multipliers or blocks"):
        al.update_multipliers(ev)
    ev = al.evaluate()
    al.update_multipliers(ev)  # current: taken
    with pytest.raises(ValueError, match="other multipliers or blocks"):
        al.update_multipliers(ev)


def _optimizers():
    lbfgs = fluxkern.optim.LBFGS
    return [
        ("lbfgs-wolfe", lambda p: lbfgs(p, max_iter=6, line_search_fn="strong_wolfe")),
        ("lbfgs-fixed", lambda p: lbfgs(p, lr=0.05, max_iter=3, max_eval=10)),
        ("lbfgs-fixed-tol", lambda p: lbfgs(p, lr=0.05, max_iter=50, tolerance_change=1e-3)),
        ("ssbfgs", lambda p: fluxkern.optim.SSBFGS(p, max_iter=6)),
        ("ssbroyden", lambda p: fluxkern.optim.SSBroyden(p, max_iter=6)),
    ]


@pytest.mark.parametrize("name,make", _optimizers(), ids=[n for n, _ in _optimizers()])
def test_last_closure_at_result_is_true_exactly_when_it_was(name, make):
    """After every step: where the optimizer reports its last closure call at the result, that
    call's loss, gradient and C equal, to the last bit, a new evaluation at the parameters the
    step left; a fixed-step L-BFGS that ends on a move it did not evaluate reports False."""
    al = _problem("cpu", "cpu" if "cpu" in fluxkern.backends() else "torch")
    opt = make(al.model.parameters())
    last = {}

    def closure():
        opt.zero_grad(set_to_none=True)
        last["ev"] = al.evaluate(backward=True)
        last["grads"] = _grads(al)
        return last["ev"].loss

    reports = []
    for _ in range(6):
        opt.step(closure)
        reports.append(opt.last_closure_at_result)
        opt.zero_grad(set_to_none=True)
        now = al.evaluate(backward=True)
        same = torch.equal(now.loss, last["ev"].loss) and all(
            torch.equal(a, b) for a, b in zip(_grads(al), last["grads"], strict=True)
        )
        if opt.last_closure_at_result:
            assert same
            for k, c in now.values.items():
                assert torch.equal(c, last["ev"].values[k])
        al.update_multipliers(now)
    if name == "lbfgs-fixed":  # max_iter reached: the last move is not evaluated
        assert reports == [False] * 6
    elif name != "lbfgs-fixed-tol":
        assert any(reports)


def test_the_trainer_hands_the_dual_update_the_last_closure_evaluation():
    """The dual update's C is that of the step's last closure call when the optimizer reports
    it at the result (no evaluation of its own), else evaluated anew; torch.optim.LBFGS does
    not report, so its trainer always evaluates."""
    al = _problem("cpu", "torch")
    twin = copy.deepcopy(al)
    counts = {}
    for name, a in (("al", al), ("twin", twin)):
        real = a.evaluate
        counts[name] = [0]

        def counting(backward=False, real=real, n=counts[name]):
            n[0] += not backward
            return real(backward)

        a.evaluate = counting
    kw = {"max_iter": 5, "line_search_fn": "strong_wolfe"}
    opt = fluxkern.optim.LBFGS(al.model.parameters(), **kw)
    trainer = fluxkern.Trainer(al.model, al, opt)
    trainer_t = fluxkern.Trainer(twin.model, twin, torch.optim.LBFGS(twin.model.parameters(), **kw))
    at_result = 0
    for k in range(4):
        trainer.step()
        trainer_t.step()
        at_result += opt.last_closure_at_result
        assert counts["al"][0] == k + 1 - at_result
        assert counts["twin"][0] == k + 1
    assert at_result > 0
