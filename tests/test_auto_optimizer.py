"""What ``--optimizer auto`` runs at each network size (fluxkern.optim.by_name.choose_optimizer):
ssbroyden with the scale-free tests up to AUTO_DENSE_LIMIT parameters, its H left out of the
checkpoints above AUTO_CHECKPOINT_LIMIT (unless asked), L-BFGS above."""

from __future__ import annotations

import pytest
import torch

import fluxkern
from fluxkern.optim import SSBroyden
from fluxkern.optim.by_name import (
    AUTO_CHECKPOINT_LIMIT,
    AUTO_DENSE_LIMIT,
    SCALE_FREE,
    choose_optimizer,
    make_optimizer,
)

F64 = torch.float64


def _loss(width: int) -> fluxkern.AugmentedLagrangian:
    x = fluxkern.inputs("x")
    u, q = fluxkern.outputs("u q")
    net = fluxkern.MLP(1, 2, width, 2, dtype=F64)
    pts = torch.linspace(0.1, 0.9, 5, dtype=F64)[:, None]
    terms = [
        fluxkern.Objective("pde", q.d(x) + 1.0, pts),
        fluxkern.Constraint("flux", q - u.d(x), pts),
    ]
    return fluxkern.AugmentedLagrangian(net, terms)


def _params(al: fluxkern.AugmentedLagrangian) -> list[torch.Tensor]:
    return list(al.model.parameters())


def _size(width: int) -> int:
    return sum(p.numel() for p in _params(_loss(width)))


@pytest.mark.parametrize(
    ("width", "name", "checkpoint_matrix"),
    [
        (40, "ssbroyden", None),  # 1,802 parameters: H in the checkpoint
        (70, "ssbroyden", False),  # 5,252: above AUTO_CHECKPOINT_LIMIT
        (100, "lbfgs", None),  # 10,502: above AUTO_DENSE_LIMIT
    ],
)
def test_auto_by_size(width, name, checkpoint_matrix):
    al = _loss(width)
    n = _size(width)
    assert (n <= AUTO_CHECKPOINT_LIMIT) == (width == 40)
    assert (n <= AUTO_DENSE_LIMIT) == (width != 100)
    got, kw = choose_optimizer(_params(al), al)
    assert got == name
    assert kw.get("checkpoint_matrix") is checkpoint_matrix
    assert {k: kw[k] for k in SCALE_FREE} == dict(SCALE_FREE)
    # the caller's own checkpoint_matrix wins; L-BFGS never sees the dense optimizers' option
    got, kw = choose_optimizer(_params(al), al, {"checkpoint_matrix": True})
    assert kw.get("checkpoint_matrix") is (True if name == "ssbroyden" else None)
    make_optimizer(got, _params(al), al, options=kw)  # accepted


def test_a_checkpoint_without_the_matrix_resumes_from_the_identity():
    w = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 50, dtype=F64))

    def closure():
        w.grad = None
        with torch.enable_grad():
            loss = ((w - 0.3) ** 2).sum() + (w**4).sum()
            loss.backward()
        return loss

    opt = SSBroyden([w], max_iter=3, checkpoint_matrix=False)
    opt.step(closure)
    assert opt.state[w]["updated"]
    saved = opt.state_dict()
    (st,) = saved["state"].values()
    assert not {"H", "H_upper", "H_scale", "H_pending_u", "H_pending_w"} & set(st)
    assert st["func_evals"] >= 1  # the counters stay
    fresh = SSBroyden([w], max_iter=3, checkpoint_matrix=False)
    fresh.load_state_dict(saved)
    assert torch.equal(fresh.inverse_hessian(), torch.eye(50, dtype=F64))
    fresh.step(closure)  # restarts H and goes on
    assert fresh.state[w]["updated"]
