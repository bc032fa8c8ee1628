"""Generalised Gauss-Newton with Levenberg-Marquardt damping for an AugmentedLagrangian.

The loss is a sum over residual rows of f(r) (see :mod:`fluxkern.residual_terms`), so with all
rows stacked, J [M, P] = dr/dtheta, g = J^T f'(r) and the GGN curvature G = J^T diag(f'') J,
one iteration solves

    (G + lambda I) delta = -g

in float64 by Cholesky: directly ([P, P]) when the rows M >= P, else in the kernel form with
A = diag(sqrt f'') J [M, P] (an [M, M] Cholesky): delta = -A^T (A A^T + lambda I)^-1 v with
v = f' / sqrt(f'') where every f'' > 0 (then g = A^T v), else by the push-through identity
delta = -(g - A^T (A A^T + lambda I)^-1 A g) / lambda.

The step is accepted when the loss decreases (gain ratio rho = actual / predicted reduction
> 0, the prediction from the quadratic model g.delta + 1/2 |A delta|^2); lambda then shrinks by
max(1/3, 1 - (2 rho - 1)^3), and after a rejection grows by nu (2, 4, 8, ...) and the system is
solved again with the same J: Nielsen's rule (Madsen, Nielsen and Tingleff, "Methods for
non-linear least squares problems", 2004), starting from lambda = 1e-3 max diag(G). Damping by
the identity (Levenberg) rather than diag(G) (Marquardt) keeps the kernel form available.

Signed constraints are handled (f'' = red mu >= 0); squared constraints with a negative
multiplier have f'' < 0, which is clamped at 0 (module doc of residual_terms). The dual updates
stay with the Trainer (one per epoch, C at the new parameters). The PINN formulation (a plain
closure, no AugmentedLagrangian) is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.nn import mlp_spec
from fluxkern.residual_terms import ResidualTerm

__all__ = ["GaussNewton"]


class GaussNewton(Optimizer):
    """Levenberg-Marquardt on the generalised Gauss-Newton model of an AugmentedLagrangian.

    Args:
        loss: The AugmentedLagrangian (its model's parameters are the ones optimised, with
            its unknowns' when it has some).
        max_iter: Gauss-Newton iterations per step() (Jacobian evaluations; default 5).
        damping: Initial lambda, or None for 1e-3 max diag(G) at the first iteration.
        max_rejects: Damping increases tried per iteration before giving up the step.
        tolerance_grad: Stop when max |g| <= this (default 1e-12).

    Raises:
        TypeError: loss is not an AugmentedLagrangian.
    """

    #: fluxkern's Trainer calls step(closure) for optimizers with this flag.
    steps_with_closure = True

    def __init__(
        self,
        loss: AugmentedLagrangian,
        max_iter: int = 5,
        damping: float | None = None,
        max_rejects: int = 12,
        tolerance_grad: float = 1e-12,
    ) -> None:
        if not isinstance(loss, AugmentedLagrangian):
            raise TypeError(
                "GaussNewton needs the per-residual form of an AugmentedLagrangian; got "
                f"{type(loss).__name__} (the 'pinn' formulation has none: use lbfgs or adam)"
            )
        spec = mlp_spec(loss.model)
        params = [t for pair in zip(spec.weights, spec.biases, strict=True) for t in pair]
        if loss.unknowns is not None:  # the Jacobian's last columns (AugmentedLagrangian)
            params += [loss.unknowns.raw[n] for n in loss.unknowns.names]
        defaults = {
            "max_iter": max_iter,
            "max_rejects": max_rejects,
            "tolerance_grad": tolerance_grad,
        }
        super().__init__(params, defaults)
        self.al = loss
        self._params: list[Tensor] = self.param_groups[0]["params"]
        if damping is not None:
            self.state[self._params[0]]["damping"] = float(damping)

    def set_loss(self, loss: AugmentedLagrangian) -> None:
        """Optimises another AugmentedLagrangian (of the same model) from the next step on.

        Raises:
            TypeError: loss is not an AugmentedLagrangian.
        """
        if not isinstance(loss, AugmentedLagrangian):
            raise TypeError(f"GaussNewton needs an AugmentedLagrangian, got {type(loss).__name__}")
        self.al = loss

    # ------------------------------------------------------------------ pieces
    def _add(self, delta: Tensor) -> None:
        k = 0
        for p in self._params:
            n = p.numel()
            p.add_(delta[k : k + n].view_as(p).to(p.dtype))
            k += n

    def _loss(self) -> float:
        with torch.no_grad():
            return float(self.al())

    @staticmethod
    def _system(terms: list[ResidualTerm]) -> tuple[Tensor, Tensor, Tensor | None]:
        """g [P], A = diag(sqrt f'') J [M, P] and, where every f'' > 0, v = f' / sqrt(f'') [M]
        (then g = A^T v), all float64."""
        g, rows, vs = None, [], []
        for t in terms:
            jac = t.jac.reshape(-1, t.jac.shape[-1]).to(torch.float64)  # [N R, P]
            fp = t.fprime.reshape(-1).to(torch.float64)  # [N R]
            root = t.fsecond.reshape(-1).to(torch.float64).sqrt()  # [N R]
            gt = jac.T @ fp
            g = gt if g is None else g + gt
            rows.append(jac * root.unsqueeze(1))
            vs.append(fp / root)
        assert g is not None
        v = torch.cat(vs)
        return g, torch.cat(rows), v if bool(torch.isfinite(v).all()) else None

    @staticmethod
    def gram(a: Tensor) -> Tensor:
        """A^T A [P, P] where A [M, P] has M >= P, else A A^T [M, M] (what solve factors)."""
        return a.T @ a if a.shape[0] >= a.shape[1] else a @ a.T

    @staticmethod
    def solve(
        g: Tensor, a: Tensor, damping: float, v: Tensor | None = None, gram: Tensor | None = None
    ) -> Tensor | None:
        """delta with (A^T A + damping I) delta = -g, or None where Cholesky fails.

        Direct ([P, P]) when A has at least as many rows as columns, else the kernel form
        ([M, M]): with v such that g = A^T v, delta = -A^T (A A^T + damping I)^-1 v; without v
        (some f'' = 0), the push-through form of the module doc, which loses accuracy to
        cancellation when damping is tiny against |A|^2.

        Args:
            g: Gradient [P].
            a: diag(sqrt f'') J, [M, P].
            damping: lambda > 0.
            v: [M] with g = A^T v, or None.
            gram: GaussNewton.gram(a) if already computed (it is not changed).

        Returns:
            delta [P], or None.
        """
        m, p = a.shape
        mat = (GaussNewton.gram(a) if gram is None else gram).clone()  # [P, P] or [M, M]
        mat.diagonal().add_(damping)
        try:
            chol = torch.linalg.cholesky(mat)
            if m >= p:
                return -torch.cholesky_solve(g.unsqueeze(1), chol).squeeze(1)
            if v is not None:
                return -(a.T @ torch.cholesky_solve(v.unsqueeze(1), chol).squeeze(1))
            inner = torch.cholesky_solve((a @ g).unsqueeze(1), chol).squeeze(1)
            return -(g - a.T @ inner) / damping
        except torch.linalg.LinAlgError:
            return None

    def _iterate(self, state: dict[str, Any], loss: float) -> tuple[float, bool]:
        """One Gauss-Newton iteration from the current parameters; returns (loss, moved)."""
        g, a, v = self._system(self.al.residual_terms())
        state["grad_max"] = float(g.abs().max())
        if state["grad_max"] <= self.param_groups[0]["tolerance_grad"]:
            return loss, False
        if "damping" not in state:  # 1e-3 max diag(G)
            state["damping"] = 1e-3 * float((a * a).sum(0).max().clamp_min(1e-300))
        gram = self.gram(a)
        nu = 2.0
        x0 = [p.clone() for p in self._params]
        for _ in range(self.param_groups[0]["max_rejects"] + 1):
            lam = state["damping"]
            delta = self.solve(g, a, lam, v, gram)
            if delta is not None:
                predicted = -(float(g.dot(delta)) + 0.5 * float((a @ delta).square().sum()))
                self._add(delta)
                new = self._loss()
                rho = (loss - new) / predicted if predicted > 0 else -1.0
                if rho > 0 and new == new:  # accept (new == new: not NaN)
                    state["damping"] = lam * max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                    state["gain_ratio"] = rho
                    return new, True
                for p, v0 in zip(self._params, x0, strict=True):  # undo exactly
                    p.copy_(v0)
            state["damping"] = lam * nu
            nu *= 2.0
            state["rejects"] = state.get("rejects", 0) + 1
        return loss, False

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """Runs up to max_iter damped Gauss-Newton iterations.

        Args:
            closure: Ignored (accepted for the Trainer's closure protocol): the optimizer
                evaluates its AugmentedLagrangian itself, without gradients.

        Returns:
            The loss at the start of the step.
        """
        state = self.state[self._params[0]]
        state.setdefault("n_iter", 0)
        start = self._loss()
        loss = start
        for _ in range(self.param_groups[0]["max_iter"]):
            loss, moved = self._iterate(state, loss)
            state["n_iter"] += 1
            if not moved:
                break
        self.al.last_loss = loss
        return torch.tensor(start, dtype=torch.float64)
