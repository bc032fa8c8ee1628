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

The first trial step of each line search is lr (torch's choice, ``initial_step="unit"``), or
with ``initial_step="secant"`` min(lr, t*) where t* is where the last search's directional
derivative, interpolated linearly between its start and its accepted step, crosses zero (the
secant estimate of that line's minimiser: t g.d / (g.d - g+.d)). The self-scaled updates tend to
overshoot: on composite_heat two of three searches from t = 1 fail the strong-Wolfe curvature
test and take a second evaluation at an interpolated step near 0.45; "secant" starts there
(docs/optimizers.md has the measurements).

When a line search finds no lower point along a direction of H that is nearly orthogonal to
-g (cosine below ``RESTART_COS``, 1e-6; seen on convection_diffusion, where the cosine was 2e-8
at a gradient of norm 2e4 and every later epoch spent its 25 evaluations on the same failed
search), the iteration searches along -g instead; if that search lowers the loss by more than
``RESTART_DROP`` (1e-10) of it, H restarts from the identity (``state["restarts"]`` counts
these); if it does not, H is kept, the step ends, and no search is retried until one succeeds.
A failed search along a direction that is not skewed (a run at its loss's round-off: a small
problem's loss of 1e-27 still falls by a few percent along -g there, and restarting H then
spoilt the run) ends the step with H kept, as before.

Pairs that fail the curvature test are skipped: s.y <= 1e-10 as in torch's L-BFGS, or with
``curvature_eps`` the scale-free s.y <= curvature_eps |s| |y| (fluxkern.optim.LBFGS's
option). Dense H costs 8 P^2 bytes; above MAX_PARAMETERS (20000, 3.2 GB) the optimizers refuse.

H is symmetric and state["H"] holds its upper triangle (j >= i; the strictly lower triangle is
kept at zero): the product H g (fluxkern.ops.sym_matvec) and the rank-2 update
(fluxkern.ops.sym_rank2_update_) each pass over half of the matrix, whose P^2 values (tens of
MB) make the iteration memory-bound. Inside step() an iteration's update is not applied at once:
its factors wait in ``state["H_pending_u"]`` (shape P x 2) and ``state["H_pending_w"]`` (2 x P)
and the next product applies them in the same pass (fluxkern.ops.sym_rank2_update_matvec_), so
an iteration reads and writes the triangle once. :meth:`inverse_hessian` returns the full
matrix with any waiting update; a checkpoint holds the triangle packed row by row
(``state["H_upper"]``, P (P + 1) / 2 values: half the bytes of the square) and the waiting
factors (float64); a square H loaded from an older checkpoint is cut to its triangle. With
``checkpoint_matrix=False`` (what ``--optimizer auto`` sets above 4000 parameters, where the
triangle would be over 32 MB) a checkpoint holds no H and a resume restarts it from the identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from fluxkern.ops import sym_matvec, sym_rank2_update_, sym_rank2_update_matvec_
from fluxkern.optim._flat import FlatParams, closure_defaults, keeps_pair
from fluxkern.optim.lbfgs import _strong_wolfe_fn

__all__ = ["CHECKPOINT_FLOAT64_LIMIT", "INITIAL_STEPS", "MAX_PARAMETERS", "SSBFGS", "SSBroyden"]

#: The line search's first trial step: "unit" (lr, torch's) or "secant" (module doc).
INITIAL_STEPS = ("unit", "secant")

MAX_PARAMETERS = 20000  # dense H [P, P] float64: 3.2 GB at the limit
# state_dict() (what a checkpoint holds) keeps H's packed triangle in float64 up to this many
# parameters (25 MB) and rounds it to float32 above (32 MB at 4000 parameters, 123 MB at
# convection's 7,851); a resume there continues from the rounded H, so it is no longer bitwise
# the uninterrupted run.
CHECKPOINT_FLOAT64_LIMIT = 2500


def _upper_mask(n: int, device: torch.device) -> Tensor:
    """[n, n] bool, True on and above the diagonal (row-major order of the packed triangle)."""
    return torch.ones(n, n, dtype=torch.bool, device=device).triu_()


def pack_upper(h: Tensor, dtype: torch.dtype) -> Tensor:
    """The upper triangle of h [P, P], row by row, as [P (P + 1) / 2] of dtype."""
    return h[_upper_mask(h.shape[0], h.device)].to(dtype)


def unpack_upper(packed: Tensor, device: torch.device) -> Tensor:
    """[P, P] float64 with :func:`pack_upper`'s values on and above the diagonal, zeros below.

    Raises:
        ValueError: when the length is not P (P + 1) / 2 for any P.
    """
    length = packed.numel()
    n = (math.isqrt(8 * length + 1) - 1) // 2
    if n * (n + 1) // 2 != length:
        raise ValueError(f"a packed triangle has P (P + 1) / 2 values; got {length}")
    h = torch.zeros(n, n, dtype=torch.float64, device=device)  # [P, P]
    h[_upper_mask(n, device)] = packed.to(dtype=torch.float64, device=device)
    return h


# A failed search along H's direction is retried along -g when the cosine between the two is
# below RESTART_COS (module doc); H restarts from the identity when the retry lowers the loss by
# more than RESTART_DROP of it (less is round-off).
RESTART_COS = 1e-6
RESTART_DROP = 1e-10


def _skewed(g: Tensor, d: Tensor, gtd: float) -> bool:
    """Whether the direction d [P] is nearly orthogonal to -g [P] (cosine below RESTART_COS)."""
    norms = float(g.norm()) * float(d.norm())
    return norms > 0.0 and -gtd < RESTART_COS * norms


# state keys of an update waiting to be applied with the next product (module doc)
PENDING = ("H_pending_u", "H_pending_w")


def _h_times(state: dict[str, Any], x: Tensor) -> Tensor:
    """H_s x [P] (state["H"]'s triangle), applying a waiting update in the same pass."""
    u, w = state.pop(PENDING[0], None), state.pop(PENDING[1], None)
    if u is None or w is None:
        return sym_matvec(state["H"], x)
    return sym_rank2_update_matvec_(state["H"], u, w, x)


def _apply_pending(state: dict[str, Any]) -> None:
    """Applies a waiting update to state["H"] on its own (a reader of H other than the next
    product: the scale fold)."""
    u, w = state.pop(PENDING[0], None), state.pop(PENDING[1], None)
    if u is not None and w is not None:
        sym_rank2_update_(state["H"], u, w)


def _drop_pending(state: dict[str, Any]) -> None:
    """Forgets a waiting update (H is being reset)."""
    for key in PENDING:
        state.pop(key, None)


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
        initial_step: str = "unit",
        checkpoint_matrix: bool = True,
    ) -> None:
        name = type(self).__name__
        defaults = closure_defaults(
            name, lr, max_iter, max_eval, tolerance_grad, tolerance_change, curvature_eps
        )
        if initial_step not in INITIAL_STEPS:
            raise ValueError(
                f"{name}: initial_step must be one of {', '.join(INITIAL_STEPS)}, got "
                f"{initial_step!r}"
            )
        defaults["self_scaling"] = self_scaling
        defaults["initial_step"] = initial_step
        defaults["checkpoint_matrix"] = bool(checkpoint_matrix)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError(f"{name} supports one parameter group only")
        self._params: list[Tensor] = self.param_groups[0]["params"]
        n = sum(p.numel() for p in self._params)
        if n > MAX_PARAMETERS:
            gb = 8.0 * n * n / 1e9
            raise ValueError(
                f"{name}: {n} parameters; the dense inverse Hessian would need "
                f"{gb:.1f} GB (8 P^2 bytes) and is limited to P <= {MAX_PARAMETERS}; use "
                "optimizer 'lbfgs' for larger networks"
            )

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state, H as its packed upper triangle (``"H_upper"``), rounded to
        float32 above :data:`CHECKPOINT_FLOAT64_LIMIT` parameters (the live H stays float64)."""
        sd = super().state_dict()
        if not sd["param_groups"][0].get("checkpoint_matrix", True):
            for key, st in list(sd["state"].items()):  # H left out: a resume restarts it
                drop = ("H", "H_scale", "updated", "t_next", *PENDING)
                sd["state"][key] = {k: v for k, v in st.items() if k not in drop}
            return sd
        for key, st in list(sd["state"].items()):
            hmat = st.get("H")
            if hmat is not None:
                dtype = torch.float32 if hmat.shape[0] > CHECKPOINT_FLOAT64_LIMIT else hmat.dtype
                packed = pack_upper(hmat, dtype)  # a copy: not the live one
                sd["state"][key] = {k: v for k, v in st.items() if k != "H"} | {"H_upper": packed}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores a saved state; H becomes float64 again (torch's loader would cast it to
        the parameters' dtype)."""
        saved = {k: v.get("H_upper", v.get("H")) for k, v in state_dict["state"].items()}
        waiting = {k: [v.get(name) for name in PENDING] for k, v in state_dict["state"].items()}
        super().load_state_dict(state_dict)
        for key, hmat in saved.items():
            param = self._params[int(key)]
            for name, value in zip(PENDING, waiting[key], strict=True):
                if value is not None:  # float64 (the loader would cast it to the parameters')
                    self.state[param][name] = value.to(dtype=torch.float64, device=param.device)
            self.state[param].pop("H_upper", None)
            if hmat is not None and hmat.dim() == 1:  # the packed triangle
                self.state[param]["H"] = unpack_upper(hmat, param.device)
            elif hmat is not None:
                # the upper triangle (a full symmetric H from an older checkpoint is cut to it)
                self.state[param]["H"] = torch.triu(
                    hmat.to(dtype=torch.float64, device=param.device)
                ).contiguous()

    # ------------------------------------------------------------------ flat views
    def _evaluate(self, closure: Callable[[], Tensor]) -> tuple[float, Tensor]:
        with torch.enable_grad():
            loss = float(closure().detach())
        return loss, self._flat_grad()

    def _line_search(
        self,
        closure: Callable[[], Tensor],
        loss: float,
        g: Tensor,
        t: float,
        d: Tensor,
        gtd: float,
    ) -> tuple[float, Tensor, float, int]:
        """The strong-Wolfe search along d from loss, g (g.d = gtd, as step() read it)."""
        x0 = [p.clone(memory_format=torch.contiguous_format) for p in self._params]

        def obj_func(x: list[Tensor], step: float, direction: Tensor) -> tuple[float, Tensor]:
            step = float(step)  # the line search's trial (a tensor where interpolated): one read
            self._add_grad(step, direction)
            out = self._evaluate(closure)
            for p, v in zip(self._params, x, strict=True):
                p.copy_(v)
            self._last_trial, self.last_closure_at_result = step, False
            return out

        # the line search's own stopping test |t d| < tolerance_change: torch's L-BFGS leaves it
        # at 1e-9 whatever its tolerance_change; here it follows the optimizer's, so that
        # tolerance_change=0 lets small steps near a minimum go on
        tol = self.param_groups[0]["tolerance_change"]
        self._last_trial = None
        loss, g, t, evals = _strong_wolfe_fn()(
            obj_func, x0, t, d, loss, g, gtd, tolerance_change=tol
        )
        # t stays as the line search returned it (a 0-dim tensor where it interpolated), each
        # use in the update a host read; the float from _accept would save ~100 reads an epoch
        # (bench/epoch_dispatch.py) but round differently: float / tensor is
        # float * (1 / tensor) in torch (e.g. the update's c / tau), so every run's iterates
        # would change in the last bits
        self._accept(t, d)
        return loss, g, t, evals

    # ------------------------------------------------------------------ the update
    def scalars(self, b: float, h: float, n: int) -> tuple[float, float]:
        """(tau, phi) of the update from b = s.B s / s.y, h = y.H y / s.y and P = n."""
        raise NotImplementedError

    def _update(
        self,
        state: dict[str, Any],
        s: Tensor,
        y: Tensor,
        t: float,
        gs_old: float,
        g_new: Tensor | None = None,
        hg_old: Tensor | None = None,
        defer: bool = False,
    ) -> Tensor | None:
        """Applies the scaled Broyden-class update to H with the pair (s, y).

        H is kept as state["H_scale"] * state["H"] (a scalar times a matrix), so that the
        scaling 1 / tau costs no pass over the matrix, and the update is one rank-2 GEMM:
        H+ = (c / tau) H_s + U M U^T with U = [H y, s] [P, 2] and M [2, 2] (the module doc's
        formula written in that basis). With g_new and hg_old = H g_old (the old H), H y comes
        from H g_new - H g_old, so one matrix-vector product serves H y and the next direction;
        the iteration reads H twice (the product, the update) instead of ten times; each pass
        touches only H's upper triangle (module doc).

        Args:
            state: The optimizer state ("H", "H_scale", "updated").
            s: The step t d [P], d = -H g_old.
            y: g_new - g_old [P].
            t: The step length.
            gs_old: g_old.s.
            g_new: The new gradient [P], or None.
            hg_old: H g_old [P] with the H before this update, or None (then H y is computed).
            defer: Leave the rank-2 update waiting in the state for the next product to apply
                in its pass (step() does; module doc) instead of applying it now.

        Returns:
            H+ g_new [P] (H+ the updated matrix, or H when the pair is skipped) when g_new is
            given, else None.
        """
        sy = float(s.dot(y))
        hs: Tensor = state["H"]  # [P, P]
        c = float(state.get("H_scale", 1.0))
        if g_new is None:
            _apply_pending(state)
        p = None if g_new is None else _h_times(state, g_new)  # [P] H_s g_new
        if not keeps_pair(sy, s, y, self.param_groups[0].get("curvature_eps")):
            return None if p is None else p.mul_(c)  # no (measurable) positive curvature: keep H
        gamma = 1.0
        if not state["updated"]:  # H_0 = (s.y / y.y) I before the first update
            gamma = sy / float(y.dot(y))
            c *= gamma
            hg_old = None if hg_old is None else hg_old * gamma
            state["updated"] = True
        if p is not None and hg_old is not None:
            hy = p.mul(c).sub_(hg_old)  # [P] H y = H g_new - H g_old
        else:
            hy = sym_matvec(hs, y).mul_(c)  # [P]
        yhy = float(y.dot(hy))
        if not (yhy > 0.0 and math.isfinite(yhy)):  # H lost positive definiteness (rounding)
            c, hy, p = _restart_h(state, sy, y, g_new)
            yhy = float(y.dot(hy))
        # s.B s with B = H^-1: B s = t B d = -t g_old (B of the H that gave d; / gamma for the
        # rescaled H_0)
        b, h = -t * gs_old / (gamma * sy), yhy / sy
        tau, phi = 1.0, 1.0
        if self.param_groups[0]["self_scaling"]:
            tau, phi = self.scalars(b, h, s.numel())
        mat = _update_matrix(tau, phi, sy, yhy, hs)  # [2, 2] M
        basis = torch.stack([hy, s], 1)  # [P, 2] U
        c_new = c / tau
        # H_s += U (M / c_new) U^T on the upper triangle, now or with the next product
        factor = ((mat / c_new) @ basis.t()).contiguous()  # [2, P]
        if defer:
            state[PENDING[0]], state[PENDING[1]] = basis, factor
        else:
            sym_rank2_update_(hs, basis, factor)
        out = None  # H+ g_new = (c / tau) H_s g_new + U M U^T g_new
        if p is not None and g_new is not None:
            out = p.mul_(c_new).add_(basis @ (mat @ (basis.t() @ g_new)))
        if not 1e-30 < c_new < 1e30:  # fold the scalar into the matrix before it over/underflows
            _apply_pending(state)
            hs.mul_(c_new)
            c_new = 1.0
        state.update(H_scale=c_new, b=b, h=h, tau=tau, phi=phi)
        return out

    def inverse_hessian(self) -> Tensor:
        """The current inverse-Hessian approximation H [P, P] (float64; a new tensor)."""
        state = self.state[self._params[0]]
        n = sum(p.numel() for p in self._params)
        if "H" not in state:
            return torch.eye(n, dtype=torch.float64, device=self._params[0].device)
        h = state["H"]  # [P, P], its upper triangle
        if state.get(PENDING[0]) is not None:  # with the update that waits for the next product
            h = h.clone()
            sym_rank2_update_(h, state[PENDING[0]], state[PENDING[1]])
        full = torch.triu(h) + torch.triu(h, 1).t()
        return full * float(state.get("H_scale", 1.0))

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
            self._restart(state, g)
        hg = _h_times(state, g).mul_(float(state.get("H_scale", 1.0)))  # [P] H g
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            d = -hg  # [P]
            gtd = float(g.dot(d))
            if not gtd <= -tol_change:  # not a descent direction (or NaN): restart from -g
                self._restart(state, g)
                d, gtd = -g, -float(g.dot(g))
                if gtd > -tol_change:
                    break
            first = not state["updated"]
            t = min(1.0, 1.0 / float(g.abs().sum())) * lr if first else lr
            if not first and group.get("initial_step") == "secant":
                t = min(lr, state.get("t_next", lr))
            prev_loss, g_old = loss, g
            loss, g, t, ls_evals = self._line_search(closure, loss, g, t, d, gtd)
            if group.get("initial_step") == "secant":
                state["t_next"] = _secant_step(float(t), gtd, float(g.dot(d)), lr)
            evals += ls_evals
            state["func_evals"] += ls_evals
            failed = float(t) == 0.0
            if failed and state["updated"] and not state.get("no_retry") and _skewed(g, d, gtd):
                # no lower point along a direction nearly orthogonal to -g: search along -g; H
                # restarts from the identity only if that search lowers the loss
                d, gtd = -g, -float(g.dot(g))
                t = min(1.0, 1.0 / float(g.abs().sum())) * lr
                loss, g, t, ls_evals = self._line_search(closure, loss, g, t, d, gtd)
                evals += ls_evals
                state["func_evals"] += ls_evals
                if prev_loss - loss <= RESTART_DROP * abs(prev_loss):
                    state["no_retry"] = True  # round-off: no retry until a search succeeds
                    break  # H kept (and a step along -g, if any, taken)
                self._restart(state, g)  # H = I, the H for which d = -g was the direction
                state["restarts"] = state.get("restarts", 0) + 1
            elif failed:  # no step: nothing to update H with
                break
            else:
                state.pop("no_retry", None)
            s = d.mul(t)  # [P]
            hg = self._update(
                state, s, g - g_old, t, float(g_old.dot(s)), g_new=g, hg_old=-d, defer=True
            )
            if float(g.abs().max()) <= tol_grad or evals >= max_eval:
                break
            if float(s.abs().max()) <= tol_change or abs(loss - prev_loss) < tol_change:
                break
        return orig_loss

    @staticmethod
    def _restart(state: dict[str, Any], g: Tensor) -> None:
        """H = I (to be rescaled at the next update; the next search starts from lr)."""
        state.pop("t_next", None)
        _drop_pending(state)
        state["H"] = torch.eye(g.numel(), dtype=torch.float64, device=g.device)  # [P, P]
        state["H_scale"] = 1.0
        state["updated"] = False


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
        initial_step: The line search's first trial: "unit" (default: lr) or "secant" (the
            last line's secant minimiser, at most lr; module doc).
        checkpoint_matrix: False leaves H out of state_dict() (a checkpoint of a few vectors;
            a resume restarts H from the identity).

    Raises:
        ValueError: More than one group, a negative lr, curvature_eps <= 0, an unknown
            initial_step, or more than MAX_PARAMETERS values.
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
        initial_step: The line search's first trial: "unit" (default: lr) or "secant" (the
            last line's secant minimiser, at most lr; module doc).
        checkpoint_matrix: False leaves H out of state_dict() (a checkpoint of a few vectors;
            a resume restarts H from the identity).

    Raises:
        ValueError: More than one group, a negative lr, curvature_eps <= 0, an unknown
            initial_step, or more than MAX_PARAMETERS values.
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


def _secant_step(t: float, gtd: float, gtd_new: float, lr: float) -> float:
    """Where g.d, linear between gtd at 0 and gtd_new at t, crosses zero (lr when it does
    not: no increase of the slope, or a value that is not a positive finite number)."""
    if not gtd_new > gtd:
        return lr
    step = t * gtd / (gtd - gtd_new)
    return step if math.isfinite(step) and step > 0.0 else lr


def _restart_h(
    state: dict[str, Any], sy: float, y: Tensor, g_new: Tensor | None
) -> tuple[float, Tensor, Tensor | None]:
    """Restarts H_s at the identity (counted in state["resets"]) with the scale of a first
    update from the pair: returns that scale c, H y [P] and H_s g_new [P] (or None)."""
    hs: Tensor = state["H"]  # [P, P]
    _drop_pending(state)
    state["resets"] = state.get("resets", 0) + 1
    hs.zero_()
    hs.diagonal().fill_(1.0)
    c = sy / float(y.dot(y))  # H_0 of the first update, from this pair
    return c, y.mul(c), None if g_new is None else g_new.clone()


def _update_matrix(tau: float, phi: float, sy: float, yhy: float, like: Tensor) -> Tensor:
    """M [2, 2] of the update H+ = H / tau + U M U^T in the basis U = [H y, s]:
    (1 / tau) [H - Hy Hy^T / yHy + phi v v^T] + s s^T / sy, v = a s - Hy / sqrt(yHy),
    a = sqrt(yHy) / sy."""
    cross = -phi / (tau * sy)
    return torch.tensor(
        [
            [(phi - 1.0) / (tau * yhy), cross],
            [cross, phi * yhy / (tau * sy * sy) + 1.0 / sy],
        ],
        dtype=like.dtype,
        device=like.device,
    )
