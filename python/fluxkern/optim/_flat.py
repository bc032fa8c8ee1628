"""What fluxkern's closure optimizers share: flat views of the parameters and gradients, the
start of a step (one closure evaluation and its flat gradient) and the curvature test of a
quasi-Newton pair."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["ABSOLUTE_CURVATURE", "FlatParams", "closure_defaults", "keeps_pair"]

#: torch.optim.LBFGS's curvature test: a pair (s, y) is kept when y.s > 1e-10.
ABSOLUTE_CURVATURE = 1e-10


def keeps_pair(ys: float, s: Tensor, y: Tensor, curvature_eps: float | None) -> bool:
    """The curvature test of a quasi-Newton pair.

    Args:
        ys: y.s.
        s: The step [P].
        y: The gradient change [P].
        curvature_eps: None for torch.optim.LBFGS's absolute test y.s > 1e-10; else the
            scale-free test y.s > curvature_eps |s| |y|. The absolute test drops every pair
            once steps and gradients are small (a sum loss near 1e-4 with gradients near 1e-7
            gives y.s ~ 1e-11), after which L-BFGS is scaled steepest descent.

    Returns:
        Whether the pair is kept.
    """
    if curvature_eps is None:
        return ys > ABSOLUTE_CURVATURE
    return ys > 0.0 and ys > curvature_eps * float(s.norm()) * float(y.norm())


def closure_defaults(
    name: str,
    lr: float,
    max_iter: int,
    max_eval: int | None,
    tolerance_grad: float,
    tolerance_change: float,
    curvature_eps: float | None,
) -> dict[str, Any]:
    """The checked options that fluxkern's closure optimizers (LBFGS, SSBFGS, SSBroyden) share.

    Args:
        name: The optimizer's name, for error messages.
        lr: Step length factor (>= 0).
        max_iter: Iterations per step.
        max_eval: Closure evaluations per step, or None for max_iter * 5 / 4 (torch's rule).
        tolerance_grad: Stopping test on max |gradient|.
        tolerance_change: Stopping test on the change of loss or step.
        curvature_eps: None (torch's absolute curvature test) or > 0 (:func:`keeps_pair`).

    Returns:
        The param-group defaults for these keys.

    Raises:
        ValueError: A negative lr or a curvature_eps that is not None and not > 0.
    """
    if lr < 0.0:
        raise ValueError(f"{name}: invalid learning rate {lr}")
    if curvature_eps is not None and not curvature_eps > 0.0:
        raise ValueError(f"{name}: curvature_eps must be None or > 0, got {curvature_eps}")
    return {
        "lr": lr,
        "max_iter": max_iter,
        "max_eval": max_eval if max_eval is not None else max_iter * 5 // 4,
        "tolerance_grad": tolerance_grad,
        "tolerance_change": tolerance_change,
        "curvature_eps": curvature_eps,
    }


class FlatParams:
    """Mixin for an Optimizer with one parameter group whose list is ``self._params``.

    ``flat_dtype`` (None: the parameters' own) is the dtype of the flat gradient; steps are
    cast back to each parameter's dtype when added.

    Attributes:
        last_closure_at_result: After step(): whether its last closure call was made at the
            parameters step() leaves, so that the loss, gradient and whatever else that call
            computed hold there (fluxkern's Trainer then gives that call's evaluation to the
            dual update instead of evaluating once more). True when the step ends on the point
            it evaluated last: after a line search that accepts its last trial step (the same
            step from the same start gives bitwise the same parameters), or after a move
            followed by an evaluation; False when it moves without evaluating after (a fixed
            step on the last iteration) or accepts an earlier trial.
    """

    _params: list[Tensor]
    param_groups: list[dict[str, Any]]
    state: Any
    flat_dtype: torch.dtype | None = None
    last_closure_at_result: bool = False
    _last_trial: float | None = None  # the step length of the line search's last evaluation

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Optimizer.zero_grad; with set_to_none (the default) each parameter's ``.grad`` is set
        to None directly, without Optimizer.zero_grad's profiler range and dynamo guard (two op
        dispatches and a context manager per call: ~0.1 ms inside an L-BFGS epoch, whose
        closure calls this once per evaluation)."""
        if not set_to_none:
            super().zero_grad(set_to_none=False)  # type: ignore[misc]
            return
        for p in self._params:
            p.grad = None

    def _flat_grad(self) -> Tensor:
        views = [
            p.new_zeros(p.numel()) if p.grad is None else p.grad.reshape(-1) for p in self._params
        ]
        flat = torch.cat(views, 0)  # [P]
        return flat if self.flat_dtype is None else flat.to(self.flat_dtype)

    def _param_views(self) -> list[Tensor] | None:
        """Flat [numel] views of the parameters, kept while each parameter keeps its storage
        (its data pointer and size); None when one is not contiguous (no flat view of it)."""
        views: list[Tensor] | None = getattr(self, "_views", None)
        if views is not None and all(
            v.data_ptr() == p.data_ptr() and v.numel() == p.numel()
            for v, p in zip(views, self._params, strict=True)
        ):
            return views
        if not all(p.is_contiguous() for p in self._params):
            return None
        self._views = [p.view(-1) for p in self._params]
        return self._views

    def _add_grad(self, step: float, direction: Tensor) -> None:
        """params += step * direction, in two dispatches (a split and one foreach add) instead
        of four per parameter: an L-BFGS iteration calls this twice or more, and on a GPU at the
        benchmark problems' sizes every dispatch costs about as much as its arithmetic."""
        chunks = direction.split([p.numel() for p in self._params])
        views = self._param_views()
        if views is None:
            for p, c in zip(self._params, chunks, strict=True):
                p.add_(c.view_as(p).to(p.dtype), alpha=step)
            return
        if any(c.dtype != v.dtype for c, v in zip(chunks, views, strict=True)):
            chunks = tuple(c.to(v.dtype) for c, v in zip(chunks, views, strict=True))
        torch._foreach_add_(views, chunks, alpha=step)

    def _accept(self, step: float | Tensor, direction: Tensor) -> float:
        """Moves the parameters to a line search's result params + step * direction (from the
        parameters its trials started from), records whether that is where its last trial
        evaluated (the same step added to the same values gives bitwise the same parameters)
        and returns the step as a float.

        torch's line search returns a 0-dim tensor where it interpolated, and each use of it
        reads it on the host (a device -> host sync on a GPU): it is read once here, and a
        caller that goes on with the float reads it no more (bench/epoch_dispatch.py counts
        the reads)."""
        step = float(step)
        self._add_grad(step, direction)
        last = self._last_trial
        self.last_closure_at_result = last is not None and step == float(last)
        return step

    def _begin_step(
        self, closure: Callable[[], Tensor]
    ) -> tuple[dict[str, Any], dict[str, Any], Tensor, float, Tensor]:
        """Evaluates the closure once at the current parameters.

        Returns:
            (the parameter group, the optimizer state, the closure's loss tensor, its value,
            the flat gradient [P]); the state's func_evals counts the evaluation.
        """
        group = self.param_groups[0]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        with torch.enable_grad():
            orig_loss = closure()
        self.last_closure_at_result = True
        loss = float(orig_loss.detach())
        state["func_evals"] += 1
        return group, state, orig_loss, loss, self._flat_grad()
