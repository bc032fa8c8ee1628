"""The optimizers of ``fluxkern.solve`` by name: their keyword options and their construction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.optim.gauss_newton import GaussNewton
from fluxkern.optim.lbfgs import LBFGS
from fluxkern.optim.quasi_newton import SSBFGS, SSBroyden

__all__ = ["OPTIMIZER_OPTIONS", "check_optimizer_options", "make_optimizer"]

_CLOSURE_KEYS = ("max_iter", "max_eval", "tolerance_grad", "tolerance_change", "curvature_eps")
#: The keyword arguments of each optimizer that SolveOptions.optimizer_options may set.
OPTIMIZER_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "lbfgs": (*_CLOSURE_KEYS, "history_size"),
    "ssbfgs": (*_CLOSURE_KEYS, "self_scaling"),
    "ssbroyden": (*_CLOSURE_KEYS, "self_scaling"),
    "gauss_newton": ("max_iter", "damping", "max_rejects", "tolerance_grad"),
    "adam": ("betas", "eps", "weight_decay", "amsgrad"),
}


def check_optimizer_options(optimizer: str, options: Any) -> None:
    """Checks the keyword options of a named optimizer (their names, not their values).

    Args:
        optimizer: "lbfgs", "ssbfgs", "ssbroyden", "gauss_newton" or "adam".
        options: The options.

    Raises:
        ValueError: options is not a dict, or names a keyword the optimizer does not take.
    """
    if not isinstance(options, dict):
        raise ValueError(f"optimizer_options must be a dict; got {options!r}")
    allowed = OPTIMIZER_OPTIONS.get(optimizer, ())
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"optimizer_options: {optimizer} takes no {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(allowed)}"
        )


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
            (max_iter 20), "gauss_newton" or "adam".
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
