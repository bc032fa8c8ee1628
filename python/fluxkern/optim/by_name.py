"""The optimizers of ``fluxkern.solve`` by name: their keyword options and their construction."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.optim.gauss_newton import GaussNewton
from fluxkern.optim.lbfgs import LBFGS
from fluxkern.optim.quasi_newton import INITIAL_STEPS, SSBFGS, SSBroyden

__all__ = [
    "AUTO_CHECKPOINT_LIMIT",
    "AUTO_DENSE_LIMIT",
    "OPTIMIZER_OPTIONS",
    "SCALE_FREE",
    "check_optimizer_options",
    "choose_optimizer",
    "make_optimizer",
]

#: Stopping and curvature tests that do not depend on the loss's scale: never stop an epoch's
#: iterations on a small gradient or change, keep a curvature pair while y.s > 1e-12 |s| |y|.
#: What every committed quasi-Newton result used (docs/results.md).
SCALE_FREE: Mapping[str, float] = {
    "curvature_eps": 1e-12,
    "tolerance_grad": 0.0,
    "tolerance_change": 0.0,
}
#: "auto" takes the dense ssbroyden up to this many parameters (H: 512 MB at the limit). It won
#: at every size measured: helmholtz 2,043, cavity 2,224, composite_heat 1,342 parameters; the
#: users' examples' 32-wide nets, 3,330-3,428, 3-400x at equal time
#: (bench/results/users-2026-12-07.md); and the 50-wide, 4-deep nets since the triangle step:
#: convection 7,851 (u 2.6e-9 in 1000 epochs against L-BFGS's 6.3e-5 in 5931), kovasznay 8,004
#: (5.4e-7 against 9.7e-4 at 300 s; bench/results/auto-limit-2026-12-07.md).
AUTO_DENSE_LIMIT = 8192
#: Above this many parameters "auto"'s ssbroyden leaves H out of its checkpoints
#: (checkpoint_matrix=False: 32 MB of packed float32 triangle at the limit; 128 MB at 8,004).
AUTO_CHECKPOINT_LIMIT = 4000

_CLOSURE_KEYS = ("max_iter", "max_eval", "tolerance_grad", "tolerance_change", "curvature_eps")
#: The keyword arguments of each optimizer that SolveOptions.optimizer_options may set.
OPTIMIZER_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "lbfgs": (*_CLOSURE_KEYS, "history_size"),
    "ssbfgs": (*_CLOSURE_KEYS, "self_scaling", "initial_step", "checkpoint_matrix"),
    "ssbroyden": (*_CLOSURE_KEYS, "self_scaling", "initial_step", "checkpoint_matrix"),
    "gauss_newton": ("max_iter", "damping", "max_rejects", "tolerance_grad"),
    "adam": ("betas", "eps", "weight_decay", "amsgrad"),
    "auto": (*_CLOSURE_KEYS, "checkpoint_matrix"),
}


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _betas(v: Any) -> bool:
    pair = isinstance(v, (list, tuple)) and len(v) == 2
    return pair and all(_real(b) and 0 <= b < 1 for b in v)


# What each option's value must be: a test and the words of the error message. Values the
# optimizers would take but that train nothing (max_iter 0) or diverge (a negative tolerance)
# are refused here, before a run starts.
_VALUES: Mapping[str, tuple[Callable[[Any], bool], str]] = {
    "max_iter": (lambda v: _whole(v) and v >= 1, "an integer >= 1"),
    "max_eval": (lambda v: v is None or (_whole(v) and v >= 1), "None or an integer >= 1"),
    "history_size": (lambda v: _whole(v) and v >= 1, "an integer >= 1"),
    "tolerance_grad": (lambda v: _real(v) and v >= 0, "a number >= 0"),
    "tolerance_change": (lambda v: _real(v) and v >= 0, "a number >= 0"),
    "curvature_eps": (lambda v: v is None or (_real(v) and v > 0), "None or > 0"),
    "self_scaling": (lambda v: isinstance(v, bool), "true or false"),
    "checkpoint_matrix": (lambda v: isinstance(v, bool), "true or false"),
    "initial_step": (lambda v: v in INITIAL_STEPS, " or ".join(f'"{v}"' for v in INITIAL_STEPS)),
    "damping": (lambda v: v is None or (_real(v) and v > 0), "None or > 0"),
    "max_rejects": (lambda v: _whole(v) and v >= 0, "an integer >= 0"),
    "betas": (_betas, "two numbers in [0, 1)"),
    "eps": (lambda v: _real(v) and v >= 0, "a number >= 0"),
    "weight_decay": (lambda v: _real(v) and v >= 0, "a number >= 0"),
    "amsgrad": (lambda v: isinstance(v, bool), "true or false"),
}


def check_optimizer_options(optimizer: str, options: Any) -> None:
    """Checks the keyword options of a named optimizer: their names and their values.

    Args:
        optimizer: "lbfgs", "ssbfgs", "ssbroyden", "gauss_newton" or "adam".
        options: The options.

    Raises:
        ValueError: options is not a dict, names a keyword the optimizer does not take, or
            gives one a value of the wrong type or range (e.g. max_iter 0, which trains
            nothing).
    """
    if not isinstance(options, dict):
        raise ValueError(f"optimizer_options must be a dict; got {options!r}")
    allowed = OPTIMIZER_OPTIONS.get(optimizer, ())
    unknown = sorted(set(options) - set(allowed), key=str)
    if unknown:
        raise ValueError(
            f"optimizer_options: {optimizer} takes no {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(allowed)}"
        )
    for key, value in options.items():
        ok, words = _VALUES[key]
        if not ok(value):
            raise ValueError(f"optimizer_options: {optimizer} {key} must be {words}; got {value!r}")


def choose_optimizer(
    params: list[Tensor],
    loss: AugmentedLagrangian | Callable[[], Tensor],
    options: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """What optimizer "auto" runs: ssbroyden with the scale-free tests (:data:`SCALE_FREE`)
    for an augmented Lagrangian of at most :data:`AUTO_DENSE_LIMIT` parameters without signed
    constraints (long quasi-Newton steps can follow a signed residual's linear term down),
    leaving H out of its checkpoints above :data:`AUTO_CHECKPOINT_LIMIT` parameters unless the
    options say ``checkpoint_matrix``; L-BFGS with the scale-free tests otherwise (larger
    networks, the PINN form).

    Args:
        params: The network's parameters.
        loss: The run's loss.
        options: The caller's options, which replace the scale-free ones.

    Returns:
        (name, options) for :func:`make_optimizer`.
    """
    n = sum(p.numel() for p in params)
    kw = {**SCALE_FREE, **(options or {})}
    signed = isinstance(loss, AugmentedLagrangian) and any(
        getattr(t, "form", "squared") == "signed" for t in loss.terms
    )
    if isinstance(loss, AugmentedLagrangian) and not signed and n <= AUTO_DENSE_LIMIT:
        if n > AUTO_CHECKPOINT_LIMIT:
            kw.setdefault("checkpoint_matrix", False)
        return "ssbroyden", kw
    kw.pop("checkpoint_matrix", None)  # an option of the dense optimizers only
    return "lbfgs", kw


def make_optimizer(
    optimizer: str,
    params: list[Tensor],
    loss: AugmentedLagrangian | Callable[[], Tensor],
    lr: float | None = None,
    options: Mapping[str, Any] | None = None,
) -> torch.optim.Optimizer:
    """The primal optimizer of a run.

    Args:
        optimizer: "lbfgs" (strong Wolfe, max_iter 20, history 100), "ssbfgs", "ssbroyden"
            (max_iter 20), "gauss_newton", "adam" or "auto" (:func:`choose_optimizer`).
        params: The network's parameters.
        loss: The run's loss (gauss_newton needs an AugmentedLagrangian).
        lr: Learning rate, or None for 1.0 (lbfgs, ssbfgs, ssbroyden) and 1e-3 (adam).
        options: More keyword arguments (OPTIMIZER_OPTIONS), replacing the defaults above.

    Returns:
        The optimizer.

    Raises:
        ValueError: gauss_newton with the pinn formulation, an lr for gauss_newton, a bad
            option value, or a network too large for the dense quasi-Newton ones.
    """
    if optimizer == "auto":
        optimizer, options = choose_optimizer(params, loss, options)
    kw = dict(options or {})
    if optimizer == "lbfgs":
        # torch.optim.LBFGS's algorithm with the two-loop recursion fused (fluxkern.optim)
        kw = {"max_iter": 20, "history_size": 100, **kw}
        return LBFGS(params, lr=lr or 1.0, line_search_fn="strong_wolfe", **kw)
    if optimizer in ("ssbfgs", "ssbroyden"):
        cls = SSBFGS if optimizer == "ssbfgs" else SSBroyden
        return cls(params, lr=lr or 1.0, **{"max_iter": 20, **kw})
    if optimizer == "gauss_newton":
        if not isinstance(loss, AugmentedLagrangian):
            raise ValueError(
                "optimizer gauss_newton needs the flux formulation (an augmented Lagrangian of "
                "residuals); use lbfgs or adam for formulation pinn"
            )
        if lr is not None:
            raise ValueError("optimizer gauss_newton takes no lr (its damping adapts itself)")
        return GaussNewton(loss, **kw)
    return torch.optim.Adam(params, lr=lr or 1e-3, **kw)
