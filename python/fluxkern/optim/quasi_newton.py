"""Dense self-scaled quasi-Newton optimizers: SSBFGS and SSBroyden.

Both keep the full inverse-Hessian approximation H [P, P] in float64 (P parameters) and take
steps d = -H g with torch's strong-Wolfe line search (the one fluxkern.optim.LBFGS uses), with
the step(closure) semantics of torch.optim.LBFGS: up to max_iter iterations per call, the same
stopping tests and first step min(1, 1 / |g|_1) lr.

The update (the Broyden class in inverse form, with a scaling of H before the update; Al-Baali's
self-scaled family as used for PINNs by Urban et al., arXiv 2405.04230, and Kiyani et al., arXiv
2501.16371). With s = x_{k+1} - x_k, y = g_{k+1} - g_k, s.y > 0:

    H+ = (1 / tau) [H - H y y^T H / (y.H y) + phi v v^T] + s s^T / (s.y),
    v  = sqrt(y.H y) (s / (s.y) - H y / (y.H y)).

phi = 1, tau = 1 is textbook BFGS, phi = 0 DFP. The scalars come from
b = s.B s / s.y (B = H^-1; since s = alpha d and B d = -g, s.B s = -alpha s.g, no B needed)
and h = y.H y / s.y:

- SSBFGS: phi = 1, tau = min(1, 1 / b): Al-Baali's restricted Oren-Luenberger factor (it only
  ever shrinks B, i.e. enlarges H, when the last step showed less curvature than B predicted).
- SSBroyden: a = b h - 1 (>= 0 by Cauchy-Schwarz), c = sqrt(a / (1 + a)),
  rho- = min(1, h (1 - c)), theta- = (rho- - 1) / a, theta+ = 1 / rho-,
  theta = max(theta-, min(theta+, (1 - b) / b)) (the Broyden parameter of the direct form),
  phi = (1 - theta) / (1 + a theta) (the same update in inverse form), sigma = 1 + a theta,
  rho+ = min(1, 1 / b) and tau = min(rho+ sigma^(-1/(P-1)), 1 / theta) for theta > 0,
  else min(rho+ sigma^(-1/(P-1)), sigma). When a is ~0 (s and H y parallel) every member of the
  family is the same update and phi = 1 is used.

The scalars are this module's reading of the papers' formulas (they could not be checked
against the papers' text here); what the tests pin down is that tau = 1, phi = 1 is exactly
textbook BFGS with the initial scaling H_0 = (s.y / y.y) I of Nocedal and Wright (6.20), which
both optimizers apply at their first update, that both minimise quadratics and Rosenbrock, and
that a resumed run continues exactly.

Pairs that fail the curvature test are skipped: s.y <= 1e-10 as in torch's L-BFGS, or with
``curvature_eps`` the scale-free s.y <= curvature_eps |s| |y| (fluxkern.optim.LBFGS's
option). Dense H costs 8 P^2 bytes; above MAX_PARAMETERS (20000, 3.2 GB) the optimizers refuse.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from fluxkern.optim._flat import FlatParams, keeps_pair
from fluxkern.optim.lbfgs import _strong_wolfe_fn

__all__ = ["MAX_PARAMETERS", "SSBFGS", "SSBroyden"]

MAX_PARAMETERS = 20000  # dense H [P, P] float64: 3.2 GB at the limit


class _DenseQuasiNewton(FlatParams, Optimizer):
    """The shared loop of SSBFGS and SSBroyden; subclasses give the update's (tau, phi)."""

    flat_dtype = torch.float64  # the dense inverse Hessian and the flat gradient

    #: fluxkern's Trainer calls step(closure) for optimizers with this flag.
    steps_with_closure = True

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        self_scaling: bool = True,
        curvature_eps: float | None = None,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {lr}")
        if curvature_eps is not None and not curvature_eps > 0.0:
            raise ValueError(
                f"{type(self).__name__}: curvature_eps must be None or > 0, got {curvature_eps}"
            )
        defaults = {
            "lr": lr,
            "max_iter": max_iter,
            "max_eval": max_eval if max_eval is not None else max_iter * 5 // 4,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "self_scaling": self_scaling,
            "curvature_eps": curvature_eps,
        }
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError(f"{type(self).__name__} supports one parameter group only")
        self._params: list[Tensor] = self.param_groups[0]["params"]
        n = sum(p.numel() for p in self._params)
        if n > MAX_PARAMETERS:
            gb = 8.0 * n * n / 1e9
            raise ValueError(
                f"{type(self).__name__}: {n} parameters; the dense inverse Hessian would need "
                f"{gb:.1f} GB (8 P^2 bytes) and is limited to P <= {MAX_PARAMETERS}; use "
                "optimizer 'lbfgs' for larger networks"
            )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores a saved state; H stays float64 (torch's loader would cast it to the
        parameters' dtype)."""
        saved = {k: v.get("H") for k, v in state_dict["state"].items()}
        super().load_state_dict(state_dict)
        for key, hmat in saved.items():
            if hmat is not None:
                param = self._params[int(key)]
                self.state[param]["H"] = hmat.to(dtype=torch.float64, device=param.device).clone()

    # ------------------------------------------------------------------ flat views
    def _evaluate(self, closure: Callable[[], Tensor]) -> tuple[float, Tensor]:
        with torch.enable_grad():
            loss = float(closure().detach())
        return loss, self._flat_grad()

    def _line_search(
        self, closure: Callable[[], Tensor], loss: float, g: Tensor, t: float, d: Tensor
    ) -> tuple[float, Tensor, float, int]:
        x0 = [p.clone(memory_format=torch.contiguous_format) for p in self._params]

        def obj_func(x: list[Tensor], step: float, direction: Tensor) -> tuple[float, Tensor]:
            self._add_grad(step, direction)
            out = self._evaluate(closure)
            for p, v in zip(self._params, x, strict=True):
                p.copy_(v)
            return out

        gtd = float(g.dot(d))
        # the line search's own stopping test |t d| < tolerance_change: torch's L-BFGS leaves it
        # at 1e-9 whatever its tolerance_change; here it follows the optimizer's, so that
        # tolerance_change=0 lets small steps near a minimum go on
        tol = self.param_groups[0]["tolerance_change"]
        loss, g, t, evals = _strong_wolfe_fn()(
            obj_func, x0, t, d, loss, g, gtd, tolerance_change=tol
        )
        self._add_grad(t, d)
        return loss, g, t, evals

    # ------------------------------------------------------------------ the update
    def scalars(self, b: float, h: float, n: int) -> tuple[float, float]:
        """(tau, phi) of the update from b = s.B s / s.y, h = y.H y / s.y and P = n."""
        raise NotImplementedError

    def _update(self, state: dict[str, Any], s: Tensor, y: Tensor, t: float, gs_old: float) -> None:
        """Applies the scaled Broyden-class update to state["H"] with the pair (s, y); the step
        was s = t d with d = -H g_old, and gs_old = g_old.s."""
        sy = float(s.dot(y))
        if not keeps_pair(sy, s, y, self.param_groups[0].get("curvature_eps")):
            return  # no (measurable) positive curvature along s: keep H
        hmat: Tensor = state["H"]  # [P, P]
        gamma = 1.0
        if not state["updated"]:  # H_0 = (s.y / y.y) I before the first update
            gamma = sy / float(y.dot(y))
            hmat.mul_(gamma)
            state["updated"] = True
        hy = hmat @ y  # [P]
        yhy = float(y.dot(hy))
        if not (yhy > 0.0 and math.isfinite(yhy)):  # H lost positive definiteness (rounding)
            state["resets"] = state.get("resets", 0) + 1
            hmat.copy_(torch.eye(s.numel(), dtype=hmat.dtype, device=hmat.device))
            hmat.mul_(sy / float(y.dot(y)))  # H_0 of the first update, from this pair
            hy = hmat @ y
            yhy = float(y.dot(hy))
        # s.B s with B = H^-1: B s = t B d = -t g_old (B of the H that gave d; / gamma for the
        # rescaled H_0)
        b, h = -t * gs_old / (gamma * sy), yhy / sy
        tau, phi = 1.0, 1.0
        if self.param_groups[0]["self_scaling"]:
            tau, phi = self.scalars(b, h, s.numel())
        # H - Hy (Hy)^T / yHy + phi v v^T with v = sqrt(yHy) (s / sy - Hy / yHy)
        hmat.addr_(hy, hy, alpha=-1.0 / yhy)
        if phi != 0.0:
            v = s.mul(math.sqrt(yhy) / sy).sub_(hy, alpha=1.0 / math.sqrt(yhy))  # [P]
            hmat.addr_(v, v, alpha=phi)
        if tau != 1.0:
            hmat.div_(tau)
        hmat.addr_(s, s, alpha=1.0 / sy)
        state.update(b=b, h=h, tau=tau, phi=phi)

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        """Runs up to max_iter quasi-Newton iterations with the strong-Wolfe line search.

        Args:
            closure: Re-evaluates the model and returns the loss (with gradients).

        Returns:
            The loss at the start of the step.
        """
        group, state, orig_loss, loss, g = self._begin_step(closure)  # g: [P] float64
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        evals = 1
        if float(g.abs().max()) <= tol_grad:
            return orig_loss
        if "H" not in state:
            state["H"] = torch.eye(g.numel(), dtype=torch.float64, device=g.device)  # [P, P]
            state["updated"] = False
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            d = -(state["H"] @ g)  # [P]
            gtd = float(g.dot(d))
            if not gtd <= -tol_change:  # not a descent direction (or NaN): restart from -g
                state["H"] = torch.eye(g.numel(), dtype=torch.float64, device=g.device)
                state["updated"] = False
                d, gtd = -g, -float(g.dot(g))
                if gtd > -tol_change:
                    break
            first = not state["updated"]
            t = min(1.0, 1.0 / float(g.abs().sum())) * lr if first else lr
            prev_loss, g_old = loss, g
            loss, g, t, ls_evals = self._line_search(closure, loss, g, t, d)
            evals += ls_evals
            state["func_evals"] += ls_evals
            s = d.mul(t)  # [P]
            self._update(state, s, g - g_old, t, float(g_old.dot(s)))
            if float(g.abs().max()) <= tol_grad or evals >= max_eval:
                break
            if float(s.abs().max()) <= tol_change or abs(loss - prev_loss) < tol_change:
                break
        return orig_loss


class SSBFGS(_DenseQuasiNewton):
    """Self-scaled BFGS with a dense float64 inverse Hessian (see the module doc).

    Args:
        params: Parameters to optimise (one group, at most MAX_PARAMETERS values).
        lr: Initial step of the line search (default 1).
        max_iter: Iterations per step() (default 20, one L-BFGS epoch's worth).
        max_eval: Function evaluations per step() (default max_iter * 5 // 4).
        tolerance_grad: Stop when max |g| <= this (default 1e-7).
        tolerance_change: Stop when a step or loss change is below this (default 1e-9).
        self_scaling: False gives plain BFGS (tau = 1).
        curvature_eps: None (default): pairs with s.y <= 1e-10 are skipped; c > 0: those with
            s.y <= c |s| |y| (scale-free; see fluxkern.optim.LBFGS).

    Raises:
        ValueError: More than one group, a negative lr, curvature_eps <= 0, or more than
            MAX_PARAMETERS values.
    """

    def scalars(self, b: float, h: float, n: int) -> tuple[float, float]:
        """tau = min(1, 1 / b), phi = 1."""
        return min(1.0, 1.0 / b), 1.0


class SSBroyden(_DenseQuasiNewton):
    """Self-scaled Broyden (Al-Baali) with a dense float64 inverse Hessian (see the module doc).

    Args:
        params: Parameters to optimise (one group, at most MAX_PARAMETERS values).
        lr: Initial step of the line search (default 1).
        max_iter: Iterations per step() (default 20, one L-BFGS epoch's worth).
        max_eval: Function evaluations per step() (default max_iter * 5 // 4).
        tolerance_grad: Stop when max |g| <= this (default 1e-7).
        tolerance_change: Stop when a step or loss change is below this (default 1e-9).
        self_scaling: False gives plain BFGS (tau = 1, phi = 1).
        curvature_eps: None (default): pairs with s.y <= 1e-10 are skipped; c > 0: those with
            s.y <= c |s| |y| (scale-free; see fluxkern.optim.LBFGS).

    Raises:
        ValueError: More than one group, a negative lr, curvature_eps <= 0, or more than
            MAX_PARAMETERS values.
    """

    def scalars(self, b: float, h: float, n: int) -> tuple[float, float]:
        """(tau, phi) of Al-Baali's self-scaled Broyden update (module doc)."""
        a = b * h - 1.0
        rho_plus = min(1.0, 1.0 / b)
        if a <= 1e-12:  # s parallel to H y: the whole family coincides
            return rho_plus, 1.0
        c = math.sqrt(a / (1.0 + a))
        # h (1 - c) = h (1 - c^2) / (1 + c) = 1 / (b (1 + c)) since h / (1 + a) = 1 / b: no
        # cancellation when a is large (c rounds to 1)
        rho_minus = min(1.0, 1.0 / (b * (1.0 + c)))
        theta_minus = (rho_minus - 1.0) / a
        theta_plus = 1.0 / rho_minus
        theta = max(theta_minus, min(theta_plus, (1.0 - b) / b))
        sigma = 1.0 + a * theta
        phi = (1.0 - theta) / sigma
        base = rho_plus * sigma ** (-1.0 / max(n - 1, 1))
        tau = min(base, 1.0 / theta) if theta > 0 else min(base, sigma)
        return tau, phi
