"""Training-step contenders written in torch: fluxkern's backends, plain PyTorch, torch.func and
torch.compile of those, on the poisson case (poisson_case.py).

A training step is what a user's loop runs per iteration: zero the gradients, compute the loss,
backward, one Adam step. Each contender owns a copy of the network made from the same seed, so
that all of them start from the same weights and their first losses can be compared.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

import common
import fluxkern as fk
import poisson_case as case

__all__ = ["Contender", "flux_contenders", "pinn_contenders"]


@dataclass
class Contender:
    """One implementation of one step.

    Attributes:
        name: Row label.
        group: Contenders of one group compute the same loss and are checked against each other
            ("flux AL", "flux penalty", "PINN").
        loss: The loss at the current parameters.
        params: The parameters the step updates.
        error: Why it could not run (then it is reported, not timed).
        first_call_s: Seconds of the first loss call (includes compilation for torch.compile).
    """

    name: str
    group: str
    loss: Callable[[], Tensor] | None
    params: list[Tensor] = field(default_factory=list)
    error: str | None = None
    first_call_s: float | None = None

    def first_loss(self) -> float | None:
        """The loss at the initial weights (first call: compiles where needed), or None with
        `error` set when it fails."""
        if self.loss is None:
            return None
        try:
            t0 = time.perf_counter()
            val = float(self.loss().detach())
            self.first_call_s = time.perf_counter() - t0
            return val
        except Exception as exc:  # noqa: BLE001 -- every failure is a row of the report
            self.error = _first_line(exc)
            traceback.print_exc()
            return None

    def time_step(self, device: str, min_time: float) -> float:
        """Median seconds of one training step (Adam, lr 1e-3) after warm-up."""
        opt = torch.optim.Adam(self.params, lr=1e-3)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            self.loss().backward()
            opt.step()

        return common.time_call(step, device=device, min_time=min_time, warmup=2)


def _first_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


def _compiled(name: str, group: str, fn: Callable[[], Tensor], params: list[Tensor]) -> Contender:
    try:
        return Contender(name, group, torch.compile(fn), params)
    except Exception as exc:  # noqa: BLE001
        return Contender(name, group, None, params, error=_first_line(exc))


def flux_contenders(
    width: int,
    depth: int,
    pts: case.PoissonPoints,
    dtype: torch.dtype,
    device: str,
    compile_variants: bool = True,
    twin: bool = True,
) -> list[Contender]:
    """Augmented-Lagrangian flux step: fluxkern (its `device` backend, and the pure-torch twin
    when `twin`), autograd.grad, torch.func and, when `compile_variants`, torch.compile of the
    last two."""
    out: list[Contender] = []
    terms = case.flux_terms(pts)
    lams: dict[str, Tensor] = {}
    for backend in fk.backends():
        if backend not in (("torch", device) if twin else (device,)):
            continue
        net = case.make_net(width, depth, 3, dtype, device)
        al = fk.AugmentedLagrangian(net, terms, backend=backend)
        for _ in range(2):  # non-trivial multipliers, the same for every contender
            al.update_multipliers()
        lams = {k: v.detach().clone() for k, v in al.multipliers.items()}
        label = "fused" if backend != "torch" else "pure-torch twin"
        out.append(
            Contender(f"fluxkern [{backend}, {label}]", "flux AL", al, list(net.parameters()))
        )
    lam_flux, lam_bc = lams["flux"], lams["bc"]

    seq = case.make_net(width, depth, 3, dtype, device).to_sequential()
    plain = lambda: case.flux_al_loss_autograd(seq, pts, lam_flux, lam_bc)  # noqa: E731
    out.append(Contender("PyTorch autograd.grad", "flux AL", plain, list(seq.parameters())))

    seq_f = case.make_net(width, depth, 3, dtype, device).to_sequential()
    params_f = dict(seq_f.named_parameters())
    func = lambda: case.flux_al_loss_func(seq_f, params_f, pts, lam_flux, lam_bc)  # noqa: E731
    out.append(Contender("torch.func vmap(jacfwd)", "flux AL", func, list(seq_f.parameters())))
    if compile_variants:
        seq_c = case.make_net(width, depth, 3, dtype, device).to_sequential()
        out.append(
            _compiled(
                "torch.compile(autograd.grad)",
                "flux AL",
                lambda: case.flux_al_loss_autograd(seq_c, pts, lam_flux, lam_bc),
                list(seq_c.parameters()),
            )
        )
        seq_cf = case.make_net(width, depth, 3, dtype, device).to_sequential()
        params_cf = dict(seq_cf.named_parameters())
        out.append(
            _compiled(
                "torch.compile(torch.func)",
                "flux AL",
                lambda: case.flux_al_loss_func(seq_cf, params_cf, pts, lam_flux, lam_bc),
                list(seq_cf.parameters()),
            )
        )
    return out


def penalty_contender(
    width: int, depth: int, pts: case.PoissonPoints, dtype: torch.dtype, device: str
) -> Contender:
    """Flux form with plain penalties in PyTorch (the reference of DeepXDE's flux form)."""
    seq = case.make_net(width, depth, 3, dtype, device).to_sequential()
    return Contender(
        "PyTorch autograd.grad (penalty)",
        "flux penalty",
        lambda: case.flux_penalty_loss_autograd(seq, pts),
        list(seq.parameters()),
    )


def pinn_contenders(
    width: int,
    depth: int,
    pts: case.PoissonPoints,
    dtype: torch.dtype,
    device: str,
    compile_variants: bool = True,
) -> list[Contender]:
    """Second-order PINN step as users write it: autograd.grad twice, and torch.compile of it."""
    seq = case.make_net(width, depth, 1, dtype, device).to_sequential()
    out = [
        Contender(
            "PyTorch autograd.grad",
            "PINN",
            lambda: case.pinn_loss_autograd(seq, pts),
            list(seq.parameters()),
        )
    ]
    if compile_variants:
        seq_c = case.make_net(width, depth, 1, dtype, device).to_sequential()
        out.append(
            _compiled(
                "torch.compile(autograd.grad)",
                "PINN",
                lambda: case.pinn_loss_autograd(seq_c, pts),
                list(seq_c.parameters()),
            )
        )
    return out
