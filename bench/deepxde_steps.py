"""DeepXDE contenders (pytorch backend): the problems written the way DeepXDE's documentation
shows, second-order PINN with dde.grad.hessian and flux form with dde.grad.jacobian.

DeepXDE is installed in the benchmark environment only (`make bench`), never as a fluxkern
dependency; without it every DeepXDE row says so. The networks get the weights of the torch
contenders' networks (same seed), so the first losses can be checked against plain PyTorch.
Points: the interior points are DeepXDE anchors (num_domain = 0) and each boundary or initial
set a PointSetBC, so DeepXDE trains on exactly the points the other contenders use.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import poisson_case
from torch_steps import Contender

__all__ = [
    "DeepXDECase",
    "DeepXDEContender",
    "build_model",
    "import_deepxde",
    "model_loss",
    "poisson_for_deepxde",
]


def import_deepxde() -> Any:
    """deepxde with its pytorch backend; ImportError with the reason when unavailable."""
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    import deepxde as dde

    if dde.backend.backend_name != "pytorch":
        raise ImportError(f"deepxde runs its {dde.backend.backend_name} backend, not pytorch")
    return dde


class DeepXDECase:
    """A problem for DeepXDE: interior points, conditions, residual functions per form.

    Attributes:
        xi: Interior points [N, d] (anchors).
        conditions: (points [Nc, d], values [Nc]) of u, one PointSetBC each.
        pde: form ("pinn" / "flux") -> pde(x, y) as DeepXDE takes it (x, y torch tensors).
        bounds: The box containing the points (DeepXDE wants a geometry).
    """

    def __init__(
        self,
        xi: Tensor,
        conditions: Sequence[tuple[Tensor, Tensor]],
        pde: dict[str, Callable[[Tensor, Tensor], Any]],
        bounds: tuple[Sequence[float], Sequence[float]],
    ) -> None:
        self.xi, self.conditions, self.pde = xi, list(conditions), pde
        self.bounds = bounds


def _copy_weights(dde_net: nn.Module, seq: nn.Sequential) -> None:
    linears = [m for m in seq if isinstance(m, nn.Linear)]
    if len(linears) != len(dde_net.linears):
        raise ValueError("network depths differ")
    with torch.no_grad():
        for dst, src in zip(dde_net.linears, linears, strict=True):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)


def build_model(
    dde: Any,
    case: DeepXDECase,
    form: str,
    seq: nn.Sequential,
    dtype: torch.dtype,
    optimizer: str = "adam",
    lr: float = 1e-3,
) -> Any:
    """A compiled dde.Model of `case` in `form` with the weights of `seq` (tanh MLP)."""
    dde.config.set_default_float("float64" if dtype == torch.float64 else "float32")
    npd = np.float64 if dtype == torch.float64 else np.float32
    geom = dde.geometry.Rectangle(list(case.bounds[0]), list(case.bounds[1]))
    bcs = [
        dde.icbc.PointSetBC(p.cpu().numpy().astype(npd), v.cpu().numpy().astype(npd)[:, None], 0)
        for p, v in case.conditions
    ]
    data = dde.data.PDE(
        geom,
        case.pde[form],
        bcs,
        num_domain=0,
        num_boundary=0,
        anchors=case.xi.cpu().numpy().astype(npd),
    )
    linears = [m for m in seq if isinstance(m, nn.Linear)]
    sizes = [linears[0].in_features] + [m.out_features for m in linears]
    net = dde.nn.FNN(sizes, "tanh", "Glorot normal")
    _copy_weights(net, seq)
    model = dde.Model(data, net)
    if optimizer == "L-BFGS":
        model.compile("L-BFGS")
    else:
        model.compile(optimizer, lr=lr)
    return model


def model_loss(model: Any) -> float:
    """DeepXDE's total training loss (sum of its per-term mean squares) at the current weights."""
    x, y, aux = model.data.train_next_batch()
    _, losses = model.outputs_losses_train(x, y, aux)
    return float(losses.sum().detach())


def _step_timer(dde: Any) -> tuple[Any, list[float]]:
    """A DeepXDE callback timing each training iteration (batch begin to batch end), and the
    list it appends the seconds to."""
    times: list[float] = []

    class Timer(dde.callbacks.Callback):
        def on_batch_begin(self) -> None:
            self.t0 = time.perf_counter()

        def on_batch_end(self) -> None:
            times.append(time.perf_counter() - self.t0)

    return Timer(), times


class DeepXDEContender(Contender):
    """A DeepXDE model as a contender: loss through DeepXDE, steps through model.train (Adam)."""

    def __init__(self, name: str, group: str, model: Any, dde: Any) -> None:
        super().__init__(name, group, loss=None, params=list(model.net.parameters()))
        self.model, self.dde = model, dde

    def first_loss(self) -> float | None:
        t0 = time.perf_counter()
        val = model_loss(self.model)
        self.first_call_s = time.perf_counter() - t0
        return val

    def time_step(self, device: str, min_time: float) -> float:
        """Median seconds of one model.train iteration (Adam, lr 1e-3), after 2 warm-up ones."""
        timer, times = _step_timer(self.dde)
        kw = {"display_every": 10**9, "verbose": 0}
        self.model.train(iterations=2, **kw)
        start = time.perf_counter()
        while len(times) < 5 or (time.perf_counter() - start < min_time and len(times) < 200):
            self.model.train(iterations=5, callbacks=[timer], **kw)
        return statistics.median(times)


def poisson_for_deepxde(pts: poisson_case.PoissonPoints) -> DeepXDECase:
    """The poisson benchmark case (bench/poisson_case.py) for DeepXDE."""

    def f(x: Tensor) -> Tensor:
        return poisson_case.source(x)[:, None]  # [N, 1]

    def pde_pinn(x: Tensor, y: Tensor) -> Tensor:
        dde = import_deepxde()
        u_xx = dde.grad.hessian(y, x, i=0, j=0)
        u_yy = dde.grad.hessian(y, x, i=1, j=1)
        return u_xx + u_yy + f(x)

    def pde_flux(x: Tensor, y: Tensor) -> list[Tensor]:
        dde = import_deepxde()
        jac = dde.grad.jacobian
        u_x, u_y = jac(y, x, i=0, j=0), jac(y, x, i=0, j=1)
        div_q = jac(y, x, i=1, j=0) + jac(y, x, i=2, j=1)
        return [div_q + f(x), y[:, 1:2] - u_x, y[:, 2:3] - u_y]

    zeros = torch.zeros(pts.xb.shape[0], dtype=pts.xb.dtype)
    return DeepXDECase(
        pts.xi, [(pts.xb, zeros)], {"pinn": pde_pinn, "flux": pde_flux}, ([0.0, 0.0], [1.0, 1.0])
    )
