"""Dual (multiplier) update rules of DESIGN.md section 1: rmsprop, pecann and capu.

Each rule keeps per-constraint state (multipliers lambda, penalties mu and its own statistics)
and updates it from the constraint values C at the current parameters. For a pointwise
constraint C is [N, R] and lambda [N, R]; for a global one the rule sees C reduced over the
points by the block's reduction ([R]).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["CAPU", "PECANN", "RULES", "DualRule", "RMSProp", "make_rule"]


class DualRule:
    """Base class. Subclasses set DEFAULTS and implement init_state / update."""

    name = "base"
    DEFAULTS: dict[str, float] = {}
    # The range of each option: ">= 0", "> 0" or "[0, 1)"; a value outside is refused (a
    # negative eta, for one, drives the multipliers the wrong way until the run diverges).
    RANGES: dict[str, str] = {}
    LAMBDA0 = 1.0
    # Sums a tensor over the ranks of a distributed run (set by fluxkern.distributed); None in
    # one process. A pointwise C [N, R] is then one rank's shard, and the norms and means over
    # the points that a rule takes need every rank's part.
    point_sum: Callable[[Tensor], Tensor] | None = None

    def __init__(self, **options: float) -> None:
        unknown = sorted(set(options) - set(self.DEFAULTS))
        if unknown:
            raise TypeError(
                f"dual rule {self.name!r}: unknown option(s) {unknown}; valid: "
                f"{sorted(self.DEFAULTS)}"
            )
        self.options = {**self.DEFAULTS, **{k: float(v) for k, v in options.items()}}
        for key, value in self.options.items():
            _check_range(self.name, key, value, self.RANGES.get(key, ">= 0"))

    def init_state(
        self,
        shape: tuple[int, ...],
        n_res: int,
        init: float | None,
        dtype: torch.dtype,
        device: torch.device,
    ) -> dict[str, Any]:
        """State of one constraint: lambda of `shape` ([N, R] or [R]) and mu [R]."""
        lam0 = self.LAMBDA0 if init is None else float(init)
        return {
            "lam": torch.full(shape, lam0, dtype=dtype, device=device),
            "mu": torch.full((n_res,), self.options.get("mu", 0.0), dtype=dtype, device=device),
        }

    def update(self, state: dict[str, Any], c: Tensor, loss: float) -> None:
        """Updates one constraint's state in place from its C (shaped like lambda)."""
        raise NotImplementedError

    def _norm(self, c: Tensor) -> Tensor:
        """||C|| over all the constraint's points (every rank's shard) and expressions."""
        if self.point_sum is None or c.dim() < 2:
            return torch.linalg.vector_norm(c)
        return torch.sqrt(self.point_sum((c * c).sum()))

    def _mean_square(self, c: Tensor) -> Tensor:
        """C^2 averaged over all the constraint's points (every rank's shard), [R]."""
        c2 = (c * c).reshape(-1, c.shape[-1])  # [N, R]
        if self.point_sum is None or c.dim() < 2:
            return c2.mean(0)
        total = self.point_sum(torch.cat([c2.sum(0), c2.new_full((1,), c2.shape[0])]))
        return total[:-1] / total[-1]


class RMSProp(DualRule):
    """v <- beta v + (1 - beta) C^2;  lambda <- lambda + eta C / sqrt(v + eps).  mu stays fixed."""

    name = "rmsprop"
    DEFAULTS = {"beta": 0.9, "eps": 1e-8, "eta": 1.0, "mu": 0.0}
    RANGES = {"beta": "[0, 1)", "eps": "> 0"}  # eps: C / sqrt(v + eps) with v = 0 at C = 0
    LAMBDA0 = 1.0

    def init_state(self, shape, n_res, init, dtype, device):
        state = super().init_state(shape, n_res, init, dtype, device)
        state["v"] = torch.zeros(shape, dtype=dtype, device=device)
        return state

    def update(self, state, c, loss):
        o = self.options
        state["v"].mul_(o["beta"]).add_((1 - o["beta"]) * c * c)
        state["lam"].add_(o["eta"] * c / torch.sqrt(state["v"] + o["eps"]))


class PECANN(DualRule):
    """If ||C|| >= 0.25 ||C_prev|| and ||C|| > eps: mu <- min(2 mu, mu_max); lambda += mu C.

    As DESIGN.md section 1 writes it, both updates happen under the condition. ||C|| is the
    Euclidean norm over the constraint's points and expressions; C_prev is the previous call's
    norm (0 before the first call, so the first call updates). One mu per constraint.
    """

    name = "pecann"
    DEFAULTS = {"mu": 1.0, "mu_max": 1e4, "eps": 1e-8}
    LAMBDA0 = 0.0

    def __init__(self, **options: float) -> None:
        super().__init__(**options)
        o = self.options
        if o["mu_max"] < o["mu"]:
            raise ValueError(
                f"dual rule 'pecann': option 'mu_max' must be >= mu; got mu_max {o['mu_max']!r} "
                f"and mu {o['mu']!r}"
            )

    def init_state(self, shape, n_res, init, dtype, device):
        state = super().init_state(shape, n_res, init, dtype, device)
        state["c_prev_norm"] = torch.zeros((), dtype=dtype, device=device)
        return state

    def update(self, state, c, loss):
        o = self.options
        norm = self._norm(c)
        if bool(norm >= 0.25 * state["c_prev_norm"]) and bool(norm > o["eps"]):
            state["mu"].copy_(torch.clamp(2 * state["mu"], max=o["mu_max"]))
            state["lam"].add_(state["mu"] * c)
        state["c_prev_norm"] = norm.detach().clone()


class CAPU(DualRule):
    """vbar <- zeta vbar + (1 - zeta) C^2;  if L >= omega L_prev: lambda += mu C and
    mu <- max(eta / sqrt(vbar + eps), mu).

    vbar and mu are per expression ([R]); C^2 is averaged over the points for vbar. L is the
    total loss at the current parameters, L_prev the previous call's (-inf before the first call,
    so the first call updates).
    """

    name = "capu"
    DEFAULTS = {"zeta": 0.99, "omega": 0.999, "eps": 1e-16, "eta": 1.0, "mu": 1.0}
    RANGES = {"zeta": "[0, 1)", "eps": "> 0"}  # eps: eta / sqrt(vbar + eps) with vbar = 0
    LAMBDA0 = 1.0

    def init_state(self, shape, n_res, init, dtype, device):
        state = super().init_state(shape, n_res, init, dtype, device)
        state["vbar"] = torch.zeros((n_res,), dtype=dtype, device=device)
        state["loss_prev"] = torch.full((), -math.inf, dtype=dtype, device=device)
        return state

    def update(self, state, c, loss):
        o = self.options
        c2 = self._mean_square(c)  # [R]
        state["vbar"].mul_(o["zeta"]).add_((1 - o["zeta"]) * c2)
        if loss >= o["omega"] * float(state["loss_prev"]):
            state["lam"].add_(state["mu"] * c)
            state["mu"].copy_(
                torch.maximum(o["eta"] / torch.sqrt(state["vbar"] + o["eps"]), state["mu"])
            )
        state["loss_prev"] = torch.tensor(loss, dtype=c.dtype, device=c.device)


def _check_range(rule: str, key: str, value: float, allowed: str) -> None:
    """Raises ValueError unless value is in `allowed` (">= 0", "> 0" or "[0, 1)")."""
    ok = {">= 0": value >= 0, "> 0": value > 0, "[0, 1)": 0 <= value < 1}[allowed]
    if not ok:
        where = f"in {allowed}" if allowed.startswith("[") else allowed
        raise ValueError(f"dual rule {rule!r}: option {key!r} must be {where}; got {value!r}")


RULES: dict[str, type[DualRule]] = {"rmsprop": RMSProp, "pecann": PECANN, "capu": CAPU}


def make_rule(name: str, **options: float) -> DualRule:
    """The dual rule called `name` with its options.

    Raises:
        ValueError: Unknown rule name (the message lists the valid ones), or an option out of
            its range (RANGES: a negative eta or mu, beta or zeta outside [0, 1), eps <= 0
            where it divides, pecann's mu_max below mu).
        TypeError: Unknown option for that rule, or an option that is not a finite number.
    """
    if name not in RULES:
        raise ValueError(f"unknown dual rule {name!r}; choose from {sorted(RULES)}")
    for k, v in options.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise TypeError(f"dual rule {name!r}: option {k!r} must be a finite number, got {v!r}")
    return RULES[name](**options)
