"""The unseen-point check's rules and report: its constants (the fresh draw's seed offset, the
schedule, the rule, the fresh points per block, the history keys), one term's figures
(:class:`TermCheck`), the verdict and the message that says what to change
(:class:`UnseenReport`), and the warning (:class:`UnseenPointsWarning`). The check itself is
:mod:`fluxkern.training.unseen_eval`, the callback :mod:`fluxkern.training.unseen`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_CHECKS",
    "DEFAULT_EVERY",
    "DEFAULT_FACTOR",
    "DEFAULT_FLOOR",
    "DEFAULT_MAX_DRAWS",
    "DEFAULT_MAX_POINTS",
    "DEFAULT_MIN_POINTS",
    "DEFAULT_TRIM",
    "HISTORY_KEYS",
    "UNSEEN_SEED_OFFSET",
    "TermCheck",
    "UnseenPointsWarning",
    "UnseenReport",
]

# The fresh points are drawn with the run's seed + this (+ 101 j for the j-th extra draw): far
# from the seeds of the training draws (the run's seed, and seed + e // every for Resample's
# redraws; a problem's k-th point set adds k).
UNSEEN_SEED_OFFSET = 1_000_003
_DRAW_STRIDE = 101
# The default schedule: every DEFAULT_EVERY epochs, or every 1/DEFAULT_CHECKS of a longer run
# (every max(10, ceil(epochs / 20)) epochs), and after the last epoch.
DEFAULT_EVERY = 10
DEFAULT_CHECKS = 20
# The rule of the warning (see UnseenReport).
DEFAULT_FACTOR = 100.0
DEFAULT_FLOOR = 1e-4
DEFAULT_TRIM = 0.005
# Fresh points per block: at least DEFAULT_MIN_POINTS where the problem's draws allow (more
# draws of a small point set, at most DEFAULT_MAX_DRAWS), at most DEFAULT_MAX_POINTS (the first
# ones: a Sobol prefix stays spread out).
DEFAULT_MIN_POINTS = 256
DEFAULT_MAX_POINTS = 4096
DEFAULT_MAX_DRAWS = 64
# The keys of history.json that the check fills (None at the epochs it did not run).
HISTORY_KEYS = ("train_residual", "unseen_residual", "unseen_max_violation")


class UnseenPointsWarning(UserWarning):
    """The residuals on fresh points are orders of magnitude above the training ones: the
    trained answer is not to be trusted between the collocation points."""


@dataclass(frozen=True)
class TermCheck:
    """One term's residuals on the training points and on fresh ones.

    Attributes:
        name: The block's name.
        kind: "objective" or "constraint".
        points: Fresh points (pairs, for a paired block) it was evaluated on.
        train_rms: RMS of its raw residuals r over the training points (and its residuals).
        unseen_rms: The same over the fresh points.
        unseen_rms_bulk: The same over the fresh points but the worst `trim` fraction of them
            (what the rule reads; see UnseenReport).
        train_max_violation: max |C| over the training points (C = r^2 for a squared
            constraint, r for a signed one: the quantity of the progress line's max|C|); None
            for an objective.
        unseen_max_violation: The same over the fresh points.
    """

    name: str
    kind: str
    points: int
    train_rms: float
    unseen_rms: float
    unseen_rms_bulk: float
    train_max_violation: float | None = None
    unseen_max_violation: float | None = None

    @property
    def rms_ratio(self) -> float | None:
        """unseen_rms / train_rms (None when train_rms is 0)."""
        return _ratio(self.unseen_rms, self.train_rms)

    @property
    def bulk_ratio(self) -> float | None:
        """unseen_rms_bulk / train_rms (None when train_rms is 0): the rule's ratio."""
        return _ratio(self.unseen_rms_bulk, self.train_rms)

    @property
    def violation_ratio(self) -> float | None:
        """unseen_max_violation / train_max_violation (None for an objective or a zero)."""
        if self.train_max_violation is None or self.unseen_max_violation is None:
            return None
        return _ratio(self.unseen_max_violation, self.train_max_violation)

    def to_dict(self) -> dict[str, Any]:
        """Its fields and ratios (results.json's entry of the term)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "points": self.points,
            "train_rms": self.train_rms,
            "unseen_rms": self.unseen_rms,
            "rms_ratio": self.rms_ratio,
            "unseen_rms_bulk": self.unseen_rms_bulk,
            "bulk_ratio": self.bulk_ratio,
        }
        if self.kind == "constraint":
            out["train_max_violation"] = self.train_max_violation
            out["unseen_max_violation"] = self.unseen_max_violation
            out["violation_ratio"] = self.violation_ratio
        return out


@dataclass(frozen=True)
class UnseenReport:
    """The check at one epoch, and its verdict.

    The rule: the answer is flagged (:attr:`untrustworthy`) when some term's RMS residual on the
    fresh points, leaving out the worst `trim` fraction of them (0.5%), is more than `factor`
    (100) times its RMS residual on the training points and more than `floor` (1e-4). Why:

    - The raw residual r (the equation's own units, for objectives and constraints alike) and
      its RMS, which a front carries: where the network fits the points and not the equation
      between them, the fresh residual is large over the whole layer (a tanh front between 12
      points: 1e3-1e15 times the training one).
    - Leaving out the worst 0.5% of the fresh points: a smooth network cannot follow a
      singularity of the exact solution (cavity's lid corners, composite_heat's kink at its
      material interface), and the few fresh points that land right at one give residuals
      1e3-1e5 times the training RMS while the answer is accurate (the committed cavity and
      composite_heat runs: full RMS ratios 7e3 and 2e5, 0.5%-trimmed 1.0-1.1). A wrong answer
      is wrong over a region, not at a handful of points. The full RMS and max |C| are
      reported beside.
    - A factor of 100: on a resolved run the fresh points see about the residual the training
      points see (the built-in problems' committed runs and resolved poisson runs: 0.9-4x), so
      two orders of magnitude only appear when the training points say nothing about the
      answer between them.
    - A floor of 1e-4 (absolute, in the residual's units): residuals that small are not a
      wrong answer whatever the ratio (a float64 run trained to 1e-9 whose fresh residual is
      1e-6), so the ratio alone would cry wolf near round-off.

    Attributes:
        epoch: The epoch after which it was computed (0 outside a run).
        terms: One TermCheck per redrawn block.
        factor: The rule's factor.
        floor: The rule's floor.
        trim: The fraction of the fresh points that the rule leaves out (the worst ones).
        not_redrawn: Blocks whose points another seed does not change (fixed tensors); they
            are not checked.
    """

    epoch: int
    terms: tuple[TermCheck, ...]
    factor: float = DEFAULT_FACTOR
    floor: float = DEFAULT_FLOOR
    trim: float = DEFAULT_TRIM
    not_redrawn: tuple[str, ...] = ()

    def _pooled(self, attr: str) -> float:
        """RMS over the objective terms' residuals (every term's when there is no objective),
        weighted by their points."""
        terms = [t for t in self.terms if t.kind == "objective"] or list(self.terms)
        if not terms:
            return math.nan
        total = sum(getattr(t, attr) ** 2 * t.points for t in terms)
        return math.sqrt(total / max(sum(t.points for t in terms), 1))

    @property
    def train_residual(self) -> float:
        """RMS objective residual on the training points (NaN when nothing was checked)."""
        return self._pooled("train_rms")

    @property
    def unseen_residual(self) -> float:
        """RMS objective residual on the fresh points but the worst `trim` of them: the figure
        beside train_residual in the progress line and history.json."""
        return self._pooled("unseen_rms_bulk")

    @property
    def unseen_residual_all(self) -> float:
        """RMS objective residual on all the fresh points."""
        return self._pooled("unseen_rms")

    @property
    def residual_ratio(self) -> float | None:
        """unseen_residual / train_residual."""
        return _ratio(self.unseen_residual, self.train_residual)

    def _max(self, attr: str) -> float | None:
        vals = [getattr(t, attr) for t in self.terms if t.kind == "constraint"]
        return max(vals) if vals else None

    @property
    def train_max_violation(self) -> float | None:
        """max |C| over the checked constraints on the training points (None without any)."""
        return self._max("train_max_violation")

    @property
    def unseen_max_violation(self) -> float | None:
        """max |C| over the checked constraints on the fresh points (None without any)."""
        return self._max("unseen_max_violation")

    @property
    def violation_ratio(self) -> float | None:
        """unseen_max_violation / train_max_violation."""
        a, b = self.unseen_max_violation, self.train_max_violation
        return None if a is None or b is None else _ratio(a, b)

    @property
    def suspect(self) -> list[TermCheck]:
        """The terms that meet the rule (see the class doc)."""
        return [
            t
            for t in self.terms
            if t.unseen_rms_bulk > self.floor and t.unseen_rms_bulk > self.factor * t.train_rms
        ]

    @property
    def untrustworthy(self) -> bool:
        """Whether some term meets the rule: the answer is not to be trusted between the
        training points."""
        return bool(self.suspect)

    def message(self, name: str = "", redrawn: bool = False) -> str:
        """One line saying what the rule found and what to change (the warning's text);
        `redrawn`: the run already redraws its points, so the advice leaves that out."""
        worst = sorted(self.suspect, key=lambda t: -(t.bulk_ratio or math.inf))
        parts = [
            f"{t.name} RMS {t.unseen_rms_bulk:.1e} vs {t.train_rms:.1e}, {_times(t.bulk_ratio)}"
            for t in worst
        ]
        head = f"{name}: " if name else ""
        fix = (
            "the run redraws its points already: use more points (--points), --resample-method "
            "rad at a front or a layer, or fluxes that stay smooth across fronts"
            if redrawn
            else "redraw the points (--resample-every 20 --resample-keep-optimizer, with "
            "--resample-method rad at a front or a layer), use more points (--points) or fluxes "
            "that stay smooth across fronts"
        )
        return (
            f"{head}the residuals on fresh points are orders of magnitude above those on the "
            f"training points ({'; '.join(parts)}; after epoch {self.epoch}): the answer is not "
            f"to be trusted between the collocation points; {fix}"
        )

    def to_dict(self) -> dict[str, Any]:
        """What results.json holds under "unseen": the pooled figures, their ratios, the
        verdict, the rule and each term's figures."""
        return {
            "epoch": self.epoch,
            "train_residual": self.train_residual,
            "unseen_residual": self.unseen_residual,
            "unseen_residual_all": self.unseen_residual_all,
            "residual_ratio": self.residual_ratio,
            "train_max_violation": self.train_max_violation,
            "unseen_max_violation": self.unseen_max_violation,
            "violation_ratio": self.violation_ratio,
            "untrustworthy": self.untrustworthy,
            "suspect": [t.name for t in self.suspect],
            "rule": {"factor": self.factor, "floor": self.floor, "trim": self.trim},
            "terms": {t.name: t.to_dict() for t in self.terms},
            "not_redrawn": list(self.not_redrawn),
        }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 and math.isfinite(a) else None


def _times(ratio: float | None) -> str:
    if ratio is None:
        return "training 0"
    return f"{ratio:.1e}x" if ratio >= 1e4 else f"{ratio:.0f}x"
