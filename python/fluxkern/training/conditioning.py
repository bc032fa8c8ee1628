"""The conditioning check: is the trained network resolved by its collocation points, and are
its outputs of comparable magnitudes? (:func:`check_conditioning`)

Two ways a flux-form problem can be badly conditioned that the loss does not show:

- Under-resolution. Where the network's output changes by a large part of its range between
  neighbouring collocation points, the points cannot say what the answer does between them (a
  front or a layer narrower than the spacing). The check measures, on fresh points of the
  domain, ``max over points of sum_i |dy_k/dx_i| h_i / (max y_k - min y_k)`` for every output k,
  with ``h_i = extent_i / N^(1/d)`` the spacing of the objective's N training points along
  input i (d inputs): the fraction of its range that output k changes by from one point to the
  next, at the worst place (but the corners of the domain, CORNER_SPACINGS). Above
  RESOLUTION_LIMIT (1: the whole range within one spacing) it warns.
- Outputs of very different magnitudes. One network fits all the outputs with one set of
  weights and one learning rate; an output 1e-6 times another is learned to the other's
  absolute accuracy, i.e. not at all. The check compares the RMS of the outputs over the fresh
  points and warns beyond MAGNITUDE_FACTOR (1e4), leaving out outputs that are zero in the
  answer (ZERO_FRACTION).

It runs once, on the trained network, at the end of a flux-form run (``fluxkern.solve`` with
the unseen-point check on: results.json's ``"conditioning"``), and on any trained model and
problem (:func:`check_trained_conditioning`).

Example:
    >>> report = check_conditioning(problem, model, train_points=8192)
    >>> report.flagged, report.message("poisson")
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fluxkern import ops
from fluxkern.blocks import BoundBlock, Objective
from fluxkern.nn import mlp_spec

__all__ = [
    "CONDITIONING_SEED_OFFSET",
    "CORNER_SPACINGS",
    "FRESH_BOUNDARY_POINTS",
    "FRESH_POINTS",
    "MAGNITUDE_FACTOR",
    "RESOLUTION_LIMIT",
    "ZERO_FRACTION",
    "ConditioningReport",
    "ConditioningWarning",
    "OutputCheck",
    "check_conditioning",
    "check_trained_conditioning",
    "conditioning_results",
    "objective_points",
    "redraw_method",
]

# Under-resolution: warn when some output changes by more than its whole range (this fraction of
# it) from one training point to the next. The committed results of the built-in problems, all
# accurate, give 0.04-0.28 (stokes, composite_heat, helmholtz) and 0.51 (convection: sin(x - 40
# t) at about 6 points per period in t, its error 6e-5); a tanh layer of width w gives h / (2 w),
# so 1 is a layer narrower than half the spacing, and convection_diffusion's 1e-6 layer gives
# 300-480. 1 keeps a factor of 2 from the accurate runs (docs/guide/trust.md).
RESOLUTION_LIMIT = 1.0
# Points within this many spacings (along every input) of a corner of the domain's bounding box
# are left out of the under-resolution rule in two or more dimensions: at a corner where the
# boundary data jump (cavity's lid corners) the exact answer itself changes by its whole range
# within any distance, and a smooth network's ratio decays like 1 / distance (the committed
# cavity run: 44 at the corner, 1.3 beyond 1 spacing, 0.86 beyond 2, 0.73 beyond 3). A corner is
# a point, not a region; the figure with the corners is reported beside (step_all). In one
# dimension the corners are the whole boundary (convection_diffusion's layer): nothing is left
# out.
CORNER_SPACINGS = 3.0
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
# Fresh points: a Sobol draw of the interior and one of the boundary (layers and corners live
# there), with the run's seed + CONDITIONING_SEED_OFFSET.
FRESH_POINTS = 4096
FRESH_BOUNDARY_POINTS = 1024
CONDITIONING_SEED_OFFSET = 2_000_029


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
    """

    name: str
    rms: float
    range: float
    step: float
    where: tuple[float, ...]
    step_all: float
    zero: bool = False
    scale: float = 1.0

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
        """The outputs whose resolution ratio exceeds the limit, worst first."""
        bad = [o for o in self.outputs if (o.resolution or 0.0) > self.resolution_limit]
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
                f"spacing near ({self._where(o)})"
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


def objective_points(bound: list[BoundBlock]) -> int:
    """The objective's training points: the points of the distinct point sets of the objective
    blocks (of all blocks when there is no objective)."""
    blocks = [b for b in bound if isinstance(b.block, Objective)] or list(bound)
    seen: dict[tuple[int, tuple[int, ...]], int] = {}
    for b in blocks:
        seen[(b.x.data_ptr(), tuple(b.x.shape))] = b.block.n
    return sum(seen.values())


def _fresh(problem: Any, seed: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Sobol points of the interior and of the boundary (what the domain can draw)."""
    dom = problem.domain
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        parts = [dom.sample_interior(FRESH_POINTS, "sobol", seed, dtype, device)]
        try:
            parts.append(
                dom.sample_boundary(FRESH_BOUNDARY_POINTS, "sobol", seed, dtype, device)[0]
            )
        except (ValueError, NotImplementedError, RuntimeError):
            pass  # a domain without a boundary sampler: the interior only
    return torch.cat(parts)


def _output_scales(model: torch.nn.Module, m: int) -> list[float]:
    """The network's scale of each output: an ``output_scale`` buffer of m values when the model
    has one, else ones."""
    c = getattr(model, "output_scale", None)
    if isinstance(c, Tensor) and c.shape == (m,) and bool((c != 0).all()):
        return [float(v) for v in c]
    return [1.0] * m


def _far_from_corners(x: Tensor, lo: Tensor, hi: Tensor, h: Tensor) -> Tensor:
    """Which points lie more than CORNER_SPACINGS spacings (along some input) from every corner
    of the bounding box [lo, hi]."""
    lo, hi = lo.to(x), hi.to(x)
    # distance in spacings to the nearest end along each input; a point is near a corner when it
    # is near an end along every input
    near_end = torch.minimum((x - lo).abs(), (hi - x).abs()) / h
    return near_end.amax(1) >= CORNER_SPACINGS


def _zero_in_answer(problem: Any, names: tuple[str, ...], x: Tensor) -> dict[str, bool] | None:
    """Which outputs the problem's exact solution has identically zero (None without one)."""
    try:
        exact = problem.exact(x)
    except Exception:  # noqa: BLE001 - a problem without (or with a failing) exact solution
        return None
    if not isinstance(exact, dict):
        return None
    out = {}
    for name in names:
        v = exact.get(name)
        if isinstance(v, Tensor) and v.numel() == x.shape[0]:
            out[name] = bool((v == 0).all())
    return out


def _point_set(problem: Any) -> tuple[str | None, bool, int | None]:
    """The problem's interior point set that ``--points NAME=N`` changes (the one named
    "interior", else the last drawn in the interior): its name, whether it is a grid, and its
    count; (None, False, None) when there is none."""
    specs = getattr(problem, "_points", None)
    if not isinstance(specs, dict):
        return None, False, None
    best: tuple[str | None, bool, int | None] = (None, False, None)
    for name, spec in specs.items():
        if getattr(spec, "where", None) == "interior":
            try:
                count: int | None = int(spec.count(problem.defaults))
            except (AttributeError, TypeError, ValueError):
                count = None
            best = (name, getattr(spec, "method", "") == "grid", count)
            if name == "interior":
                break
    return best


def check_conditioning(
    problem: Any,
    model: torch.nn.Module,
    train_points: int,
    *,
    seed: int = 0,
    output_names: tuple[str, ...] | None = None,
    resolution_limit: float = RESOLUTION_LIMIT,
    magnitude_factor: float = MAGNITUDE_FACTOR,
    backend: str | None = None,
) -> ConditioningReport:
    """The check once, on a trained network: one jet (values and input Jacobian, no gradient)
    on FRESH_POINTS + FRESH_BOUNDARY_POINTS fresh Sobol points of the problem's domain.

    Args:
        problem: The problem (its domain, input and output names, and exact solution if any).
        model: The trained flux-form network (a fluxkern MLP or a Sequential that
            :func:`fluxkern.nn.mlp_spec` reads).
        train_points: N, the objective's training points (:func:`objective_points`).
        seed: The run's seed (the fresh draw adds CONDITIONING_SEED_OFFSET).
        output_names: The network's outputs (default: the problem's flux-form outputs).
        resolution_limit, magnitude_factor: The rules (the module's constants).
        backend: The jet's backend (None: fastest for the device).

    Returns:
        The report.
    """
    param = next(model.parameters())
    dtype, device = param.dtype, param.device
    names = tuple(output_names or problem.output_names)
    inputs = tuple(problem.input_names)
    x = _fresh(problem, seed + CONDITIONING_SEED_OFFSET, dtype, device)
    lo, hi = problem.domain.bounds()
    d = len(inputs)
    n = max(int(train_points), 1)
    spacing = tuple(float(e) / n ** (1.0 / d) for e in (hi - lo))
    with torch.no_grad():
        y, jac = ops.mlp_jet(x, mlp_spec(model), backend)  # [P, m], [P, m, d]
        h = torch.tensor(spacing, dtype=jac.dtype, device=jac.device)
        step = (jac.abs() * h).sum(2)  # [P, m]
        rms = y.square().mean(0).sqrt()
        rng = y.max(0).values - y.min(0).values
        sall = step.max(0).values
        far = _far_from_corners(x, lo, hi, h) if d >= 2 else None
        if far is not None and bool(far.any()):
            step = torch.where(far[:, None], step, torch.zeros_like(step))
        smax, arg = step.max(0)
    rms_l = [float(v) for v in rms]
    scales = _output_scales(model, len(names))
    raw = [v / abs(c) for v, c in zip(rms_l, scales, strict=True)]
    top = max(raw) if raw else 0.0
    # the exact solution (when the problem has one) decides which outputs are zero; asked only
    # when some output is small enough for it to matter (it can cost more than the check)
    small = any(v * magnitude_factor < top or v <= ZERO_FRACTION * top for v in raw)
    exact_zero = _zero_in_answer(problem, names, x) if small else None
    outs = []
    for k, name in enumerate(names):
        if exact_zero is not None and name in exact_zero:
            zero = exact_zero[name]
        else:
            zero = raw[k] <= ZERO_FRACTION * top
        where = tuple(float(v) for v in x[int(arg[k])])
        outs.append(
            OutputCheck(
                name,
                rms_l[k],
                float(rng[k]),
                float(smax[k]),
                where,
                float(sall[k]),
                zero,
                scales[k],
            )
        )
    point_set, grid, set_points = _point_set(problem)
    return ConditioningReport(
        tuple(outs),
        inputs,
        spacing,
        n,
        x.shape[0],
        resolution_limit,
        magnitude_factor,
        point_set,
        grid,
        set_points,
    )


def check_trained_conditioning(
    problem: Any, model: torch.nn.Module, seed: int = 0, **kwargs: Any
) -> ConditioningReport:
    """The check on a saved model (e.g. a run's model.pt): the objective's points are those of
    ``problem.flux_terms(seed, ...)`` (the problem as the run had it: configure it with the
    run's points and problem_options).

    Args:
        problem: The problem.
        model: The trained flux-form network.
        seed: The run's seed.
        **kwargs: More arguments of :func:`check_conditioning`.

    Returns:
        The report.
    """
    param = next(model.parameters())
    dtype, device = param.dtype, param.device
    spec = mlp_spec(model)
    how = (spec.weights[0].shape[1], spec.weights[-1].shape[0], dtype, device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        bound = [b.bind(*how) for b in problem.flux_terms(seed, dtype, device)]
    return check_conditioning(problem, model, objective_points(bound), seed=seed, **kwargs)


def conditioning_results(
    trainer: Any, note: Callable[[str], None] | None = None, *, warn: bool = True
) -> dict[str, Any]:
    """The check at the end of a run (what :func:`fluxkern.solve` puts under "conditioning"):
    on the trainer's model, its problem and the objective's current training points; a flagged
    report gives one :class:`ConditioningWarning` and, through `note`, a line on stderr.

    A diagnostic never ends a run: a check that cannot run gives {"skipped": why}.

    Args:
        trainer: The :class:`fluxkern.training.Trainer` after the run (flux form).
        note: Writes a line on stderr (the run's Progress.note), or None.
        warn: False records the verdict without warning.

    Returns:
        :meth:`ConditioningReport.to_dict` with the check's "seconds", or {"skipped": why}.
    """
    al, problem = trainer.al, trainer.problem
    if al is None or problem is None:
        return {"skipped": "the conditioning check is for a flux-form run of a problem"}
    t0 = time.perf_counter()
    try:
        report = check_conditioning(
            problem,
            trainer.model,
            objective_points(list(al.bound.values())),
            seed=trainer.seed,
            backend=al.backend,
        )
    except (ValueError, TypeError, KeyError, RuntimeError, AttributeError) as exc:
        return {"skipped": f"the conditioning check could not run ({exc})"}
    out = {**report.to_dict(), "seconds": time.perf_counter() - t0}
    if report.flagged and warn:
        msg = report.message(trainer.name, redraw_method(trainer))
        if note is not None:
            note(f"warning: {msg}")
        warnings.warn(msg, ConditioningWarning, stacklevel=3)
    return out
