"""L-BFGS with the semantics of torch.optim.LBFGS and a fused two-loop recursion.

torch.optim.LBFGS keeps its curvature pairs as Python lists and runs the two-loop recursion as
about 4 x history small tensor operations per iteration. With the history of 100 used for the
benchmark problems that is ~4000 dispatches per epoch, measured at ~65 ms per epoch on the
2-core CPU: as much as the loss evaluations of a small problem. Here the pairs live in two
preallocated ring buffers [H, P] and the recursion is one op call (fluxkern.ops.lbfgs_direction:
C++ on CPU, its torch twin elsewhere). The ring buffers live on the CPU wherever that op is built,
also for parameters on a GPU: there the twin's recursion is ~1,500 kernel launches per iteration
(30,500 of the 33,900 dispatches of a poisson epoch), while the CPU op costs a copy of the new
pair and the gradient to the host and of the direction back. Everything else follows
torch.optim.LBFGS: the same options and defaults, the first step min(1, 1 / |g|_1) lr, the
curvature condition y.s > 1e-10, H_diag = y.s / y.y, the same stopping tests and the same
strong-Wolfe line search (torch's own function), so iterates agree with torch.optim.LBFGS up to
rounding.

One option torch does not have: ``curvature_eps`` replaces the absolute curvature condition by
the scale-free y.s > curvature_eps |s| |y|. With the absolute one, once the loss and its
gradient are small every new pair fails the test (bench/results/lbfgs_plateau: convection at
loss 1.3e-4 kept 0 of 599 pairs), the history stops changing and the iteration crawls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from fluxkern import ops
from fluxkern.optim._flat import FlatParams, closure_defaults, keeps_pair
from fluxkern.specs import LbfgsHistory

__all__ = ["LBFGS", "history_device"]


_RING = ("s", "y", "rho", "sy", "yy")  # the tensors of the pair history, on one device


def history_device(like: Tensor) -> torch.device:
    """Where the pair history of parameters like `like` lives: the CPU when the fused CPU
    direction op is built (for parameters on any device), else the parameters' device."""
    return torch.device("cpu") if "cpu" in ops.backends() else like.device


def _strong_wolfe_fn() -> Callable[..., Any]:
    try:
        from torch.optim.lbfgs import _strong_wolfe
    except ImportError as e:  # torch moved its private line search
        raise RuntimeError(
            "fluxkern.optim.LBFGS needs torch.optim.lbfgs._strong_wolfe, which this torch "
            f"({torch.__version__}) does not have; use torch.optim.LBFGS instead"
        ) from e
    return _strong_wolfe


class LBFGS(FlatParams, Optimizer):
    """Limited-memory BFGS, a drop-in replacement for torch.optim.LBFGS (one parameter group).

    Args:
        params: Parameters to optimise (one group).
        lr: Step length multiplier (default 1).
        max_iter: Iterations per step() (default 20).
        max_eval: Function evaluations per step() (default max_iter * 5 // 4).
        tolerance_grad: Stop when max |g| <= this (default 1e-7).
        tolerance_change: Stop when a step or loss change is below this (default 1e-9).
        history_size: Curvature pairs kept (default 100).
        line_search_fn: None (fixed step lr) or "strong_wolfe".
        curvature_eps: None (default) for torch's curvature condition y.s > 1e-10, or c > 0
            for y.s > c |s| |y| (see the module doc).

    Raises:
        ValueError: More than one parameter group, a negative lr or history_size < 1, an
            unknown line search, or curvature_eps <= 0.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
        curvature_eps: float | None = None,
    ) -> None:
        defaults = closure_defaults(
            "LBFGS", lr, max_iter, max_eval, tolerance_grad, tolerance_change, curvature_eps
        )
        if history_size < 1:
            raise ValueError(f"LBFGS: history_size must be >= 1, got {history_size}")
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: only 'strong_wolfe' is supported, got {line_search_fn!r}")
        defaults.update(history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS does not support per-parameter options (one group only)")
        self._params: list[Tensor] = self.param_groups[0]["params"]

    # ------------------------------------------------------------------ flat views
    def _set_params(self, values: list[Tensor]) -> None:
        torch._foreach_copy_(self._params, values)  # one dispatch for all parameters

    _trial_applied: bool = False  # the parameters hold the line search's last trial point

    def _directional_evaluate(
        self, closure: Callable[[], Tensor], x: list[Tensor], t: float | Tensor, d: Tensor
    ) -> tuple[float, Tensor]:
        # The parameters are left at the trial point x + t d, and set back to x only before
        # another trial or when the search accepts another step (see _move): the usual
        # iteration, whose first trial is accepted, then copies and adds once instead of twice.
        if self._trial_applied:
            self._set_params(x)
        t = float(t)  # the line search's trial (a tensor where interpolated): one host read
        self._add_grad(t, d)
        self._trial_applied = True
        with torch.enable_grad():
            loss = float(closure().detach())
        flat_grad = self._flat_grad()
        self._last_trial, self.last_closure_at_result = t, False
        return loss, flat_grad

    def _history(self, state: dict[str, Any], like: Tensor) -> dict[str, Any]:
        """The ring buffers of the pairs (allocated, or moved to their device after a load)."""
        h = self.param_groups[0]["history_size"]
        dev = history_device(like)
        if "s" not in state or state["s"].shape != (h, like.numel()):
            new = {"device": dev, "dtype": like.dtype}
            state["s"] = torch.zeros(h, like.numel(), **new)  # [H, P] steps
            state["y"] = torch.zeros(h, like.numel(), **new)  # [H, P] gradient changes
            state["rho"] = torch.zeros(h, **new)  # [H] 1 / (y . s)
            state["sy"] = torch.zeros(h, h, **new)  # [H, H] s_i . y_j by rows
            state["yy"] = torch.zeros(h, h, **new)  # [H, H] y_i . y_j by rows
            state["start"], state["count"] = 0, 0
        elif state["s"].device != dev:  # Optimizer.load_state_dict moved them to the params
            for key in _RING:
                state[key] = state[key].to(dev)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state saved by this class or by torch.optim.LBFGS (its pair lists become the
        ring buffers, so a run checkpointed with torch's optimizer continues exactly)."""
        super().load_state_dict(state_dict)
        state = self.state[self._params[0]]
        if "old_dirs" in state:
            dirs, stps, ro = state.pop("old_dirs"), state.pop("old_stps"), state.pop("ro")
            state.pop("al", None)
            if dirs:
                p = dirs[0].numel()
                self._history(state, dirs[0].new_zeros(p))
                for i, (yi, si, ri) in enumerate(zip(dirs, stps, ro, strict=True)):
                    state["y"][i].copy_(yi)
                    state["s"][i].copy_(si)
                    state["rho"][i] = float(ri)
                state["start"], state["count"] = 0, len(dirs)
                k = len(dirs)
                state["sy"][:k, :k] = state["s"][:k] @ state["y"][:k].T
                state["yy"][:k, :k] = state["y"][:k] @ state["y"][:k].T
            h_diag = state.pop("H_diag", 1.0)
            state["h_diag"] = float(h_diag)
            for key in ("t", "prev_loss"):
                if isinstance(state.get(key), Tensor):
                    state[key] = float(state[key])

    # ------------------------------------------------------------------ pieces of a step
    def _direction(
        self,
        state: dict[str, Any],
        flat_grad: Tensor,
        prev_flat_grad: Tensor,
        d: Tensor,
        t: float,
        h_diag: float,
    ) -> tuple[Tensor, float]:
        """Stores the last step's pair if it passes the curvature test (dropping the oldest
        when the ring is full) and returns the new direction -H g and H_diag."""
        hist_size = self.param_groups[0]["history_size"]
        y = flat_grad.sub(prev_flat_grad)
        s = d.mul(t)
        ys = float(y.dot(s))
        new_row = -1
        if keeps_pair(ys, s, y, self.param_groups[0].get("curvature_eps")):
            if state["count"] == hist_size:  # full: drop the oldest
                row = state["start"]
                state["start"] = (state["start"] + 1) % hist_size
            else:
                row = (state["start"] + state["count"]) % hist_size
                state["count"] += 1
            state["s"][row].copy_(s)  # to the ring's device
            state["y"][row].copy_(y)
            state["rho"][row] = 1.0 / ys
            h_diag = ys / float(y.dot(y))
            new_row = row
        ring = [state[k] for k in (*_RING, "start", "count")]
        grad = flat_grad.to(ring[0].device)
        d = ops.lbfgs_direction(grad, LbfgsHistory(*ring), new_row, h_diag)
        return d.to(flat_grad.device), h_diag

    def _move(
        self,
        closure: Callable[[], Tensor],
        loss: float,
        flat_grad: Tensor,
        t: float,
        d: Tensor,
        gtd: float,
        last: bool,
    ) -> tuple[float, Tensor, float, int]:
        """Moves the parameters along d: by the strong-Wolfe line search, or by the fixed step
        t (then re-evaluating unless this is the last iteration). Returns (loss, gradient, t,
        evaluations); with 0 evaluations loss and gradient are the old ones."""
        if self.param_groups[0]["line_search_fn"] == "strong_wolfe":
            x_init = [p.clone(memory_format=torch.contiguous_format) for p in self._params]

            def obj_func(x: list[Tensor], step: float, direction: Tensor) -> Any:
                return self._directional_evaluate(closure, x, step, direction)

            self._last_trial, self._trial_applied = None, False
            loss, flat_grad, t, ls_evals = _strong_wolfe_fn()(
                obj_func, x_init, t, d, loss, flat_grad, gtd
            )
            last = self._last_trial
            if self._trial_applied and last is not None and float(t) == float(last):
                # the parameters are x + t d from that trial: bitwise what _accept computes
                self.last_closure_at_result = True
                t = float(t)
            else:
                if self._trial_applied:
                    self._set_params(x_init)
                t = self._accept(t, d)
            self._trial_applied = False
            return loss, flat_grad, t, ls_evals  # >= 1: its first trial evaluates
        self._add_grad(t, d)
        self.last_closure_at_result = False
        if last:
            return loss, flat_grad, t, 0
        with torch.enable_grad():
            loss = float(closure().detach())
        self.last_closure_at_result = True
        return loss, self._flat_grad(), t, 1

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        """Runs up to max_iter L-BFGS iterations.

        Args:
            closure: Re-evaluates the model and returns the loss (with gradients).

        Returns:
            The loss at the start of the step.
        """
        group, state, orig_loss, loss, flat_grad = self._begin_step(closure)
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        current_evals = 1
        if float(flat_grad.abs().max()) <= tol_grad:
            return orig_loss
        self._history(state, flat_grad)

        d: Tensor | None = state.get("d")
        t: float | None = state.get("t")
        h_diag: float = state.get("h_diag", 1.0)
        prev_flat_grad: Tensor | None = state.get("prev_flat_grad")
        prev_loss: float | None = state.get("prev_loss")
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1 or d is None or prev_flat_grad is None or t is None:
                d = flat_grad.neg()
                state["start"], state["count"] = 0, 0
                h_diag = 1.0
            else:
                d, h_diag = self._direction(state, flat_grad, prev_flat_grad, d, t, h_diag)
            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            else:
                prev_flat_grad.copy_(flat_grad)
            prev_loss = loss

            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / float(flat_grad.abs().sum())) * lr
            else:
                t = lr
            gtd = float(flat_grad.dot(d))
            if gtd > -tol_change:  # not a descent direction
                break

            loss, flat_grad, t, ls_evals = self._move(
                closure, loss, flat_grad, t, d, gtd, last=n_iter == max_iter
            )
            opt_cond = ls_evals > 0 and float(flat_grad.abs().max()) <= tol_grad
            current_evals += ls_evals
            state["func_evals"] += ls_evals

            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if float(d.mul(t).abs().max()) <= tol_change:
                break
            if abs(loss - prev_loss) < tol_change:
                break

        state["d"], state["t"], state["h_diag"] = d, t, h_diag
        state["prev_flat_grad"], state["prev_loss"] = prev_flat_grad, prev_loss
        return orig_loss
