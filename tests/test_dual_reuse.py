"""AugmentedLagrangian.update_multipliers takes the evaluation it is handed (made at the current
parameters) instead of evaluating again, and evaluates anew otherwise; either way the
multipliers come out bitwise the same as from a fresh evaluation. The Trainer hands it the last
closure evaluation of an L-BFGS step when the optimizer reports that evaluation at the step's
result, also after a line search that moved the parameters and put them back."""

from __future__ import annotations

import copy

import pytest
import torch

import fluxkern
from fluxkern.evaluation import Evaluation
from matrix import device_backends

F64 = torch.float64
# the non-polynomial block is on purpose (the torch path's points and data are checked too)
pytestmark = pytest.mark.filterwarnings("ignore:block 'bc'.*not a polynomial:UserWarning")


def _problem(device: str, backend: str, dual: str = "rmsprop") -> fluxkern.AugmentedLagrangian:
    """A fused group (pde, flux) and a non-polynomial block on other points (torch path)."""
    torch.manual_seed(5)
    x = fluxkern.inputs("x")
    u, q = fluxkern.outputs("u q")
    g = fluxkern.data("g")
    net = fluxkern.MLP(1, 2, 8, 2, dtype=F64).to(device)
    pts = torch.linspace(0.1, 0.9, 7, dtype=F64, device=device)[:, None]
    bnd = torch.tensor([[0.0], [1.0]], dtype=F64, device=device)
    terms = [
        fluxkern.Objective("pde", q.d(x) + 1.0, pts),
        fluxkern.Constraint("flux", q - u.d(x), pts),
        fluxkern.Constraint(
            "bc",
            fluxkern.sin(u) - g,
            bnd,
            data={"g": torch.tensor([0.3, -0.2], dtype=F64, device=device)},
            multiplier="global",
        ),
    ]
    return fluxkern.AugmentedLagrangian(net, terms, dual=dual, backend=backend)


def _counting(al: fluxkern.AugmentedLagrangian) -> list[int]:
    """Counts al's evaluations (calls of its _evaluate)."""
    calls = [0]
    real = al._evaluate

    def evaluate(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    al._evaluate = evaluate
    return calls


def _twin(al: fluxkern.AugmentedLagrangian) -> fluxkern.AugmentedLagrangian:
    """A copy with the same network, points and dual state."""
    twin = copy.deepcopy(al)
    twin.__dict__.pop("_evaluate", None)  # a counter of _counting would call al's method
    return twin


def _same_state(a: fluxkern.AugmentedLagrangian, b: fluxkern.AugmentedLagrangian) -> None:
    for name in a.multipliers:
        assert torch.equal(a.multipliers[name], b.multipliers[name]), name
        assert torch.equal(a.penalties[name], b.penalties[name]), name


def _update_against_fresh(
    al: fluxkern.AugmentedLagrangian, evaluation: Evaluation | None = None
) -> tuple[int, list[int]]:
    """Updates al (with the evaluation, if given) and a copy that must evaluate anew; asserts
    both give bitwise the same C, multipliers and penalties. Returns al's evaluations in the
    update and its counter."""
    fresh = _twin(al)
    calls = _counting(al)
    values = al.update_multipliers(evaluation)
    evaluations = calls[0]
    fresh_values = fresh.update_multipliers()
    for name, c in fresh_values.items():
        assert torch.equal(values[name], c), name
    _same_state(al, fresh)
    return evaluations, calls


@pytest.mark.parametrize("device,backend", device_backends())
@pytest.mark.parametrize("dual", ["rmsprop", "pecann", "capu"])
def test_update_after_a_call_reuses_it_and_equals_a_fresh_evaluation(device, backend, dual):
    al = _problem(device, backend, dual)
    evaluation = al.evaluate(backward=True)
    evaluations, calls = _update_against_fresh(al, evaluation)
    assert evaluations == 0
    # the multipliers moved (the comparison is not vacuous), and the next update, with them
    # changed, evaluates anew
    assert not torch.equal(
        al.multipliers["flux"], _problem(device, backend, dual).multipliers["flux"]
    )
    assert _update_against_fresh(al)[0] == 1
    assert calls[0] == 1
    # the evaluation made before the update is refused now: the multipliers changed
    with pytest.raises(ValueError, match="other multipliers"):
        al.update_multipliers(evaluation)


def _silent(cls: type) -> type:
    """The optimizer class `cls`, never reporting its last closure call at the result."""
    never = property(lambda self: False, lambda self, value: None)
    return type(f"Silent{cls.__name__}", (cls,), {"last_closure_at_result": never})


def _counting_fresh(al: fluxkern.AugmentedLagrangian) -> list[int]:
    """Counts al's evaluations without gradient (the dual update's own)."""
    calls = [0]
    real = al.evaluate

    def evaluate(backward=False):
        calls[0] += not backward
        return real(backward)

    al.evaluate = evaluate
    return calls


@pytest.mark.parametrize("device,backend", device_backends())
@pytest.mark.parametrize("optimizer", ["lbfgs", "ssbroyden"])
def test_parameters_moved_and_put_back_still_reuse(device, backend, optimizer):
    """As an L-BFGS line search: the parameters move, are evaluated elsewhere, return. The
    Trainer's step does exactly this; its dual update takes the step's last closure evaluation
    (no evaluation of its own) whenever the optimizer reports it at the result, with bitwise
    the multipliers and parameters of a run whose dual updates all evaluate anew."""
    al = _problem(device, backend)
    fresh = copy.deepcopy(al)
    if optimizer == "lbfgs":
        cls, kw = fluxkern.optim.LBFGS, {"max_iter": 4, "line_search_fn": "strong_wolfe"}
    else:
        cls, kw = fluxkern.optim.SSBroyden, {"max_iter": 4}
    opt = cls(al.model.parameters(), **kw)
    fresh_opt = _silent(cls)(fresh.model.parameters(), **kw)
    trainer = fluxkern.Trainer(al.model, al, opt)
    fresh_trainer = fluxkern.Trainer(fresh.model, fresh, fresh_opt)
    calls, fresh_calls = _counting_fresh(al), _counting_fresh(fresh)
    reused = 0
    for _ in range(5):
        before = calls[0]
        trainer.step()
        fresh_trainer.step()
        reused += opt.last_closure_at_result
        assert calls[0] - before == (0 if opt.last_closure_at_result else 1)
        _same_state(al, fresh)
        for a, b in zip(al.model.parameters(), fresh.model.parameters(), strict=True):
            assert torch.equal(a, b)
    assert reused > 0 and fresh_calls[0] == 5


def _move_weight(al):
    with torch.no_grad():
        next(al.model.parameters())[0, 0] += 1e-3


def _move_shift(al):
    al.model.input_shift.add_(1e-3)


def _edit_multiplier(al):
    al.multipliers["flux"][3, 0] += 0.5


def _edit_penalty(al):
    al.penalties["bc"].mul_(2.0)


def _load_other_state(al):
    other = _problem("cpu", "torch")
    other.update_multipliers()
    al.load_state_dict(other.state_dict())


def _new_points(al):
    terms = []
    for t in al.terms:
        moved = copy.copy(t)
        moved.points = t.points * 0.5 + 0.25
        terms.append(moved)
    al.set_terms(terms, pointwise="keep")


@pytest.mark.parametrize("device,backend", device_backends())
@pytest.mark.parametrize(
    "change",
    [_move_weight, _move_shift, _edit_multiplier, _edit_penalty, _load_other_state, _new_points],
)
def test_any_change_after_the_call_evaluates_anew(device, backend, change):
    al = _problem(device, backend)
    al()
    change(al)
    assert _update_against_fresh(al)[0] == 1


def test_a_traced_call_keeps_nothing(monkeypatch):
    al = _problem("cpu", "torch")
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    al()
    monkeypatch.undo()
    calls = _counting(al)
    al.update_multipliers()
    assert calls[0] == 1
