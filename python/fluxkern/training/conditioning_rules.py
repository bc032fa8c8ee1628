"""The conditioning check's rules and report: the limits, one output's figures
(:class:`OutputCheck`), the verdict and the message that says what to change
(:class:`ConditioningReport`). The check itself is :mod:`fluxkern.training.conditioning`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LAYER_BINS",
    "LAYER_NEIGHBOURHOOD",
    "LAYER_SEEN_BINS",
    "MAGNITUDE_FACTOR",
    "RESOLUTION_LIMIT",
    "ZERO_FRACTION",
    "ConditioningReport",
    "ConditioningWarning",
    "OutputCheck",
    "redraw_method",
]

# Under-resolution: warn when some output changes by more than its whole range (this fraction of
# it) from one training point to the next. The committed results of the built-in problems, all
# accurate, give 0.04-0.28 (stokes, composite_heat, helmholtz) and 0.51 (convection: sin(x - 40
# t) at about 6 points per period in t, its error 6e-5); a tanh layer of width w gives h / (2 w),
# so 1 is a layer narrower than half the spacing, and convection_diffusion's 1e-6 layer gives
# 300-480. 1 keeps a factor of 2 from the accurate runs (docs/guide/trust.md).
RESOLUTION_LIMIT = 1.0
# The training points across the layer at the worst place (conditioning.py's doc): the layer's
# depth (its width w = range / |grad y|, centred at the worst place, along the gradient) is cut
# into LAYER_BINS slices, and the points within LAYER_NEIGHBOURHOOD spacings of the worst place
# (in units of h_i along each input) that fall in it are sorted into them. The rule warns only
# when fewer than LAYER_SEEN_BINS of every LAYER_BINS slices in the domain hold a point (all
# four slices of a layer inside the domain, two of one centred on its edge): a grid line along
# the layer fills one slice (the points sit at one depth), a 1-D layer inside one cell none, a
# layer at the boundary of a 1-D domain one at most (the end point). Random points of the
# same count as a grid of spacing h give about 2 R / ratio points in the band in two dimensions
# (R the neighbourhood in spacings): 8 at a ratio of 2 with R = 8, and three of four slices are
# then missed with probability ~2%.
LAYER_NEIGHBOURHOOD = 8.0
LAYER_BINS = 4
LAYER_SEEN_BINS = 3
# Magnitudes: warn when the RMS of two outputs differs by more than this factor. The committed
# results of the built-in problems: 2.5-94 (stokes: u and v 0.005 against p 0.46); a network
# fits every output to about the same absolute accuracy, so an output 1e4 times smaller than
# another keeps at best 1e4 times the other's relative error (a test problem with s = 1e-6 u:
# its s 20 times off while u was right to 4e-7). 1e4 keeps two orders of magnitude from them.
MAGNITUDE_FACTOR = 1e4
# An output whose RMS is below this fraction of the largest output's is taken to be zero in the
# answer (a velocity that vanishes, left at round-off by the training) and is left out of both
# rules, unless the problem's exact solution says it is not zero (then the exact solution
# decides: an output whose exact values are all 0 is left out, any other is kept).
ZERO_FRACTION = 1e-8


class ConditioningWarning(UserWarning):
    """The trained network is under-resolved by its collocation points, or its outputs are of
    very different magnitudes: the answer is not to be trusted as it stands."""


@dataclass(frozen=True)
class OutputCheck:
    """One output's figures on the fresh points.

    Attributes:
        name: The output's name.
        rms: RMS of its values.
        range: max - min of its values.
        step: max over the points of sum_i |dy/dx_i| h_i: how much it changes from one training
            point to the next, at the worst place (in two or more dimensions, but within
            CORNER_SPACINGS of a corner of the bounding box).
        where: The point (input values) of that maximum.
        step_all: The same max over all the fresh points, the corners included.
        zero: Whether it is taken to be zero in the answer (left out of both rules).
        scale: The network's own scale of the output (an MLP's output_scale buffer, when it
            has one; 1 otherwise): the network's last layer produces rms / scale.
        layer_width: range / |grad y| at `where`: the width of the layer there (None when
            the training points were not given or the gradient is 0).
        layer_points: Training points within the layer there (LAYER_NEIGHBOURHOOD spacings
            around `where`), or None.
        layer_bins: How many of the layer's LAYER_BINS depth slices hold one, or None.
        layer_bins_inside: How many of them lie in the domain's bounding box (their centres),
            or None.
    """

    name: str
    rms: float
    range: float
    step: float
    where: tuple[float, ...]
    step_all: float
    zero: bool = False
    scale: float = 1.0
    layer_width: float | None = None
    layer_points: int | None = None
    layer_bins: int | None = None
    layer_bins_inside: int | None = None

    @property
    def seen(self) -> bool:
        """Whether the training points lie across the layer at `where` (a point in LAYER_SEEN_BINS
        of every LAYER_BINS of its depth slices in the domain); False when that is unknown."""
        if self.layer_bins is None or not self.layer_bins_inside:
            return False
        return self.layer_bins * LAYER_BINS >= LAYER_SEEN_BINS * self.layer_bins_inside

    @property
    def raw_rms(self) -> float:
        """RMS of what the network's last layer produces (rms / |scale|): what the magnitude
        rule compares."""
        return self.rms / abs(self.scale)

    @property
    def resolution(self) -> float | None:
        """step / range (None for a zero output or a constant one)."""
        if self.zero or not self.range > 0:
            return None
        return self.step / self.range

    def to_dict(self) -> dict[str, Any]:
        """Its figures (results.json's entry of the output)."""
        return {
            "rms": self.rms,
            "raw_rms": self.raw_rms,
            "range": self.range,
            "step": self.step,
            "resolution": self.resolution,
            "where": list(self.where),
            "step_all": self.step_all,
            "resolution_all": self.step_all / self.range if self.range > 0 else None,
            "zero": self.zero,
            "layer_width": self.layer_width,
            "layer_points": self.layer_points,
            "layer_bins": self.layer_bins,
            "layer_bins_inside": self.layer_bins_inside,
        }


@dataclass(frozen=True)
class ConditioningReport:
    """The check's figures and verdict.

    Attributes:
        outputs: One OutputCheck per network output.
        input_names: The inputs (for the point of a message).
        spacing: h_i per input: the objective's training point spacing.
        train_points: N, the objective's training points.
        points: The fresh points it was evaluated on.
        resolution_limit: The under-resolution rule's limit.
        magnitude_factor: The magnitude rule's factor.
        point_set: The name of the point set that ``--points NAME=N`` would change ("interior"
            for the built-in problems), or None when unknown.
        grid: Whether that set is a grid (its count must be a d-th power).
        set_points: That set's count (the run's; a final phase trains on a multiple of it), or
            None when unknown (the suggestion then scales train_points).
    """

    outputs: tuple[OutputCheck, ...]
    input_names: tuple[str, ...]
    spacing: tuple[float, ...]
    train_points: int
    points: int
    resolution_limit: float = RESOLUTION_LIMIT
    magnitude_factor: float = MAGNITUDE_FACTOR
    point_set: str | None = None
    grid: bool = False
    set_points: int | None = None

    @property
    def under_resolved(self) -> list[OutputCheck]:
        """The outputs whose resolution ratio exceeds the limit, worst first, but those whose
        layer the training points lie across (OutputCheck.seen)."""
        bad = [
            o for o in self.outputs if (o.resolution or 0.0) > self.resolution_limit and not o.seen
        ]
        return sorted(bad, key=lambda o: -(o.resolution or 0.0))

    @property
    def magnitude_ratio(self) -> float | None:
        """Largest RMS / smallest RMS (of the network's raw outputs) over the outputs not taken
        to be zero (None with fewer than two, or a smallest of 0)."""
        rms = [o.raw_rms for o in self.outputs if not o.zero]
        if len(rms) < 2 or min(rms) <= 0:
            return None
        return max(rms) / min(rms)

    @property
    def badly_scaled(self) -> bool:
        """Whether the outputs' magnitudes differ by more than the factor."""
        ratio = self.magnitude_ratio
        return ratio is not None and ratio > self.magnitude_factor

    @property
    def flagged(self) -> bool:
        """Whether either rule fires."""
        return bool(self.under_resolved) or self.badly_scaled

    def suggested_points(self) -> int | None:
        """Training points that would bring the worst resolution ratio under half the limit if
        the network kept its gradients (h ~ N^(-1/d)); None when no output is under-resolved."""
        bad = self.under_resolved
        if not bad:
            return None
        d = len(self.spacing)
        worst = bad[0].resolution or 0.0
        n = (self.set_points or self.train_points) * (2 * worst / self.resolution_limit) ** d
        if self.grid:
            side = math.ceil(n ** (1 / d) - 1e-9)
            return int(side**d)
        return int(min(math.ceil(n), 10**12))

    def _where(self, o: OutputCheck) -> str:
        return ", ".join(f"{n}={v:.3g}" for n, v in zip(self.input_names, o.where, strict=False))

    def message(self, name: str = "", redraws: str | None = None) -> str:
        """One line: what the rules found and what to change (empty when nothing fired);
        `redraws`: how the run redraws its points already ("uniform", "rad"; None: it does
        not), so the advice leaves out what it does."""
        parts = []
        bad = self.under_resolved
        if bad:
            figs = "; ".join(
                f"{o.name} changes by {o.resolution:.2g} times its range within one point "
                f"spacing near ({self._where(o)}){_inside(o)}"
                for o in bad
            )
            n = self.suggested_points()
            flag = f"--points {self.point_set}={n}" if self.point_set else f"--points (N = {n})"
            h = ", ".join(f"{v:.2g}" for v in self.spacing)
            parts.append(
                f"under-resolved: {figs} (spacing h = {h} of {self.train_points} objective "
                f"points; limit {self.resolution_limit:g}): the points cannot see what the answer "
                f"does between them; {_redraw_advice(redraws)}use more points ({flag} would "
                "bring it under if the answer keeps its gradients), "
                f"{_REDRAW.get(redraws, '')}or choose flux outputs that stay "
                "smooth across a front (docs/guide/flux-forms.md)"
            )
        if self.badly_scaled:
            kept = [o for o in self.outputs if not o.zero]
            big = max(kept, key=lambda o: o.raw_rms)
            small = sorted(
                (o for o in kept if big.raw_rms > self.magnitude_factor * o.raw_rms),
                key=lambda o: o.raw_rms,
            )
            figs = ", ".join(
                f"{o.name} (RMS {o.raw_rms:.2g}) {big.raw_rms / o.raw_rms:.1e}" for o in small
            )
            # the scales that make the network's outputs O(1): the small ones', and the large
            # one's when it is itself far from 1
            scaled = small + ([big] if not 1e-2 <= big.raw_rms <= 1e2 else [])
            flags = " ".join(f"--output-scale {o.name}={_round(o.rms):.0e}" for o in scaled)
            write = ", ".join(f"{o.name} = {_round(o.rms):.0e} * {o.name}_hat" for o in scaled)
            parts.append(
                f"badly scaled: {figs} times smaller than {big.name} (RMS {big.raw_rms:.2g}; "
                f"factor limit {self.magnitude_factor:g}): one network fits them to {big.name}'s "
                f"absolute accuracy; rescale so that its outputs are O(1): {flags} (or write "
                f"{write} in the problem's terms and train the _hat outputs)"
            )
        if not parts:
            return ""
        head = f"{name}: " if name else ""
        return head + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """What results.json holds under "conditioning"."""
        return {
            "outputs": {o.name: o.to_dict() for o in self.outputs},
            "resolution": {o.name: o.resolution for o in self.outputs},
            "rms": {o.name: o.rms for o in self.outputs},
            "magnitude_ratio": self.magnitude_ratio,
            "spacing": dict(zip(self.input_names, self.spacing, strict=False)),
            "train_points": self.train_points,
            "points": self.points,
            "under_resolved": [o.name for o in self.under_resolved],
            "badly_scaled": self.badly_scaled,
            "flagged": self.flagged,
            "message": self.message() or None,
            "rule": {
                "resolution_limit": self.resolution_limit,
                "magnitude_factor": self.magnitude_factor,
                "zero_fraction": ZERO_FRACTION,
            },
        }


# the under-resolution warning's advice on redraws, by how the run redraws its points already
_REDRAW = {
    None: "redraw them where the residual is large (--resample-every 20 --resample-method rad) ",
    "uniform": "redraw them by residual (--resample-method rad) ",
}


def _inside(o: OutputCheck) -> str:
    """What the training points do in the layer (empty when unknown)."""
    if o.layer_points is None or o.layer_width is None:
        return ""
    n = o.layer_points
    return (
        f", where {n} training point{'s' if n != 1 else ''} "
        f"{'lie' if n != 1 else 'lies'} within its layer ({o.layer_width:.2g} wide)"
    )


def _redraw_advice(redraws: str | None) -> str:
    if redraws is None:
        return ""
    how = "by residual" if redraws == "rad" else "uniformly"
    return f"the run redraws its points {how} already: "


def redraw_method(trainer: Any) -> str | None:
    """How a trainer's last fit redraws its points: the method ("uniform", "rad") of its
    :class:`fluxkern.training.Resample`, or of the redraws that an AutoRedraw started; None
    when it does not redraw them."""
    for cb in getattr(trainer, "callbacks", ()):
        if getattr(cb, "redraws_points", False):
            res = getattr(cb, "resample", None) or cb
            method = getattr(res, "method", "uniform")
            return method if method in _REDRAW or method == "rad" else "uniform"
    return None


def _round(x: float) -> float:
    """x to one significant figure (the scale a message suggests)."""
    if x <= 0 or not math.isfinite(x):
        return x
    return float(f"{x:.0e}")
