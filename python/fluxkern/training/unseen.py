"""The unseen-point check: the residuals and constraint violations of the trained network on fresh
points that the run never trained on, beside the training ones (:class:`UnseenCheck`).

With fixed collocation points the flux form can drive the loss and the constraint violation to
tiny values while the answer is wrong between the points: a flux output (q standing for u_x)
may deviate from the derivative it stands for wherever no point watches it, most at a front or a
layer. The training numbers cannot show this; the same residuals on another draw of the points
can. The check redraws every block's points with other seeds (the problem's own point sets:
``problem.flux_terms(seed, dtype, device)``, as :class:`fluxkern.training.Resample` does) and
evaluates the residuals there, without gradients, every few epochs and at the end of the run.

Example:
    >>> check = UnseenCheck()  # every 10 epochs (5% of a longer run) and after the last
    >>> trainer.fit(300, [check, Progress()])
    >>> check.report.residual_ratio  # unseen RMS objective residual / training one
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fluxkern import ops
from fluxkern.blocks import Block, BoundBlock, Objective
from fluxkern.nn import mlp_spec
from fluxkern.training.callbacks import Callback, Progress
from fluxkern.training.history import EpochRecord
from fluxkern.training.point_blocks import concat_blocks, same_points, take_rows
from fluxkern.training.trainer import Trainer

__all__ = [
    "DEFAULT_CHECKS",
    "DEFAULT_EVERY",
    "DEFAULT_FACTOR",
    "DEFAULT_FLOOR",
    "DEFAULT_MAX_POINTS",
    "DEFAULT_MIN_POINTS",
    "DEFAULT_TRIM",
    "HISTORY_KEYS",
    "UNSEEN_SEED_OFFSET",
    "TermCheck",
    "UnseenCheck",
    "UnseenPointsWarning",
    "UnseenReport",
    "check_trained",
    "check_unseen",
    "redrawable",
    "term_stats",
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


# ---------------------------------------------------------------------------------- evaluation
def term_stats(
    model: torch.nn.Module,
    bound: Sequence[BoundBlock],
    backend: str | None = None,
    trim: float = 0.0,
) -> dict[str, tuple[float, float, float | None, int]]:
    """Each block's residual figures at the model's current parameters: one jet (no gradient)
    per distinct point set, then the residual expressions in torch.

    Args:
        model: The network.
        bound: Bound blocks (AugmentedLagrangian.bound's values, or Block.bind's).
        backend: The jet's backend (None: fastest for the points' device).
        trim: The fraction of the points (the worst, by their sum of r^2) that the second
            figure leaves out.

    Returns:
        {name: (RMS of r, RMS of r without the worst trim of the points, max |C| or None for an
        objective, points)}.
    """
    spec = mlp_spec(model)
    jets: dict[tuple[int, tuple[int, ...]], tuple[Tensor, Tensor]] = {}
    out: dict[str, tuple[float, float, float | None, int]] = {}
    with torch.no_grad():
        for b in bound:
            key = (b.x.data_ptr(), tuple(b.x.shape))
            if key not in jets:
                jets[key] = ops.mlp_jet(b.x, spec, backend)
            y, jac = jets[key]
            t = b.block
            r2 = b.residuals_torch(y, jac).square()  # [N, R]
            n, n_res = r2.shape
            rms = bulk = 0.0
            if r2.numel():
                per_point = r2.sum(1)
                rms = float((per_point.sum() / (n * n_res)).sqrt())
                drop = int(trim * n)
                if drop:
                    per_point = torch.sort(per_point).values[: n - drop]
                bulk = float((per_point.sum() / (per_point.numel() * n_res)).sqrt())
            viol: float | None = None
            if not isinstance(t, Objective):
                c = r2 if t.form == "squared" else r2.sqrt()
                viol = float(c.max()) if c.numel() else 0.0
            out[t.name] = (rms, bulk, viol, t.n)
    return out


def check_unseen(
    model: torch.nn.Module,
    train: Sequence[BoundBlock],
    fresh: Sequence[BoundBlock],
    *,
    epoch: int = 0,
    backend: str | None = None,
    factor: float = DEFAULT_FACTOR,
    floor: float = DEFAULT_FLOOR,
    trim: float = DEFAULT_TRIM,
    not_redrawn: Sequence[str] = (),
) -> UnseenReport:
    """The check once: the model's residuals on the training blocks and on fresh ones.

    Args:
        model: The network.
        train: The bound blocks it trained on (e.g. ``list(al.bound.values())``).
        fresh: Bound blocks of the same names on fresh points (those without a training
            block of their name are skipped).
        epoch: The epoch it belongs to.
        backend: The jet's backend.
        factor, floor, trim: The rule (see UnseenReport).
        not_redrawn: Names of blocks left out because their points could not be redrawn.

    Returns:
        The report.
    """
    names = {b.block.name for b in train}
    fresh = [b for b in fresh if b.block.name in names]
    keep = {b.block.name for b in fresh}
    seen = term_stats(model, [b for b in train if b.block.name in keep], backend)
    unseen = term_stats(model, fresh, backend, trim)
    terms = []
    for b in fresh:
        name = b.block.name
        rms, bulk, viol, n = unseen[name]
        kind = "objective" if isinstance(b.block, Objective) else "constraint"
        terms.append(TermCheck(name, kind, n, seen[name][0], rms, bulk, seen[name][2], viol))
    return UnseenReport(epoch, tuple(terms), factor, floor, trim, tuple(not_redrawn))


@dataclass(frozen=True)
class _Sizes:
    """How many fresh points per block: min_points (by more draws, at most max_draws of
    them), at most max_points."""

    min_points: int | None = DEFAULT_MIN_POINTS
    max_points: int | None = DEFAULT_MAX_POINTS
    max_draws: int = DEFAULT_MAX_DRAWS


def _fresh_blocks(
    draw: Callable[[int], Sequence[Block]],
    seed: int,
    train: dict[str, BoundBlock],
    sizes: _Sizes,
    how: tuple[int, int, torch.dtype, torch.device],
) -> tuple[list[BoundBlock], tuple[str, ...]]:
    """The fresh blocks (bound) and the names of the blocks that another seed does not redraw.

    The first draw (seed) decides which blocks are redrawn: those with a training block of
    their name and other points. When the smallest of them has fewer than min_points points,
    more draws (seed + 101 j) are appended, up to max_draws in all; then each block keeps its
    first max_points points.
    """
    first = [b for b in draw(seed) if b.name in train]
    same = tuple(b.name for b in first if same_points(train[b.name].x, b.points))
    parts = {b.name: [b] for b in first if b.name not in same}
    if parts and sizes.min_points is not None:
        smallest = max(1, min(p[0].n for p in parts.values()))
        wanted = math.ceil(sizes.min_points / smallest)
        if sizes.max_points is not None:  # no draw whose points would all be cut off
            wanted = min(wanted, math.ceil(sizes.max_points / smallest))
        for j in range(1, min(wanted, sizes.max_draws)):
            for b in draw(seed + _DRAW_STRIDE * j):
                if b.name in parts:
                    parts[b.name].append(b)
    fresh = []
    for blocks in parts.values():
        block = concat_blocks(blocks)
        if sizes.max_points is not None:
            if block.n > sizes.max_points:
                block = take_rows(block, torch.arange(sizes.max_points))
        fresh.append(block.bind(*how))
    return fresh, same


def redrawable(problem: Any) -> Any:
    """The problem, or for a declared problem with grid point sets (``Sample(...,
    method="grid")``, the same for every seed) a shallow copy whose grid sets are Sobol draws
    of the same size: fresh points for the check where the training points are a grid."""
    from fluxkern.problems.declared import DeclaredProblem  # (the problems import training)
    from fluxkern.problems.points import Sample

    specs = getattr(problem, "_points", None)
    if not isinstance(problem, DeclaredProblem) or not isinstance(specs, dict):
        return problem
    grids = {k for k, v in specs.items() if isinstance(v, Sample) and v.method == "grid"}
    if not grids:
        return problem
    variant = copy.copy(problem)
    variant._points = {
        k: dataclasses.replace(v, method="sobol") if k in grids else v for k, v in specs.items()
    }
    return variant


@contextmanager
def _own_rng(device: torch.device) -> Iterator[None]:
    """Leaves the global random state as it was: a point-set function that draws from torch's
    global generator must not change the training's later draws."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def check_trained(
    problem: Any,
    model: torch.nn.Module,
    seed: int = 0,
    *,
    seed_offset: int = UNSEEN_SEED_OFFSET,
    min_points: int | None = DEFAULT_MIN_POINTS,
    max_points: int | None = DEFAULT_MAX_POINTS,
    factor: float = DEFAULT_FACTOR,
    floor: float = DEFAULT_FLOOR,
    trim: float = DEFAULT_TRIM,
    backend: str | None = None,
) -> UnseenReport:
    """The check on a trained network after the fact (e.g. a run's model.pt): the residuals on
    the points of ``problem.flux_terms(seed, ...)`` (a run's first draw: for a run that
    resampled, not the draw it ended on) and on fresh ones.

    Example:
        >>> state = torch.load("runs/poisson-flux/model.pt", weights_only=True)
        >>> model = fluxkern.solver.build_model(problem, "flux", torch.float64, torch.device("cpu"))
        >>> model.load_state_dict(state["model"])
        >>> check_trained(problem, model, state["options"]["seed"]).residual_ratio

    Args:
        problem: The problem as the run had it (its point counts and options: a run's points
            and problem_options apply through fluxkern.problems.configure.configure).
        model: The trained flux-form network.
        seed: The run's seed.
        seed_offset, min_points, max_points: The fresh points (as for :class:`UnseenCheck`).
        factor, floor, trim: The rule (see UnseenReport).
        backend: The jet's backend.

    Returns:
        The report (epoch 0).
    """
    param = next(model.parameters())
    dtype, device = param.dtype, param.device
    spec = mlp_spec(model)
    how = (spec.weights[0].shape[1], spec.weights[-1].shape[0], dtype, device)
    with _own_rng(device):
        train = {b.name: b.bind(*how) for b in problem.flux_terms(seed, dtype, device)}
        fresh_problem = redrawable(problem)
        fresh, same = _fresh_blocks(
            lambda s: fresh_problem.flux_terms(s, dtype, device),
            seed + seed_offset,
            train,
            _Sizes(min_points, max_points),
            how,
        )
    return check_unseen(
        model,
        list(train.values()),
        fresh,
        backend=backend,
        factor=factor,
        floor=floor,
        trim=trim,
        not_redrawn=same,
    )


# ---------------------------------------------------------------------------------- callback
class UnseenCheck(Callback):
    """Checks the network on fresh points every `every` epochs and after the last one; warns at
    the end of the run when the fresh residuals are orders of magnitude above the training ones
    (the rule: :class:`UnseenReport`).

    The fresh points are the problem's own point sets drawn with seed ``trainer.seed +
    UNSEEN_SEED_OFFSET`` (once, at the start): at least `min_points` (256) per block, by more
    draws of a small set (at most 64 draws), and at most `max_points` (4096). They are the same
    at every check and never among the training points, also with Resample. A declared
    problem's grid point sets are drawn as Sobol points instead (:func:`redrawable`); blocks
    whose points still do not change with the seed (fixed tensors) are left out and named in
    the report. Each check evaluates the network's jet once per distinct point set on the training
    and on the fresh points, without gradients: it reads the parameters and the training
    blocks and changes nothing (not the parameters, the optimizer, the multipliers nor the
    global random state), so a run is bitwise the same with or without it.

    Each check notes "train_residual", "unseen_residual" (RMS objective residuals; unseen: but
    the worst `trim` of the fresh points) and "unseen_max_violation" (max |C| on the fresh
    points) in the trainer's history at its epoch (history.json keys; null at the other
    epochs); the progress line shows the latest ones. At the end of the run an untrustworthy
    report gives an :class:`UnseenPointsWarning` (a UserWarning) and a line on stderr through
    `display`. Flux form only: with another loss (PINN) it does nothing.

    Args:
        every: Epochs between checks (epochs divisible by it), or None: every 10 epochs, or
            every 5% of a run of more than 200 epochs (max(10, ceil(epochs / 20)) of the run's
            target). The last epoch is always checked.
        sampler: Called as sampler(seed=...) and returning the fresh blocks; None draws through
            the trainer's problem: its flux_terms(seed, dtype, device).
        seed_offset: Added to the run's seed for the fresh draw.
        min_points: Fresh points per block wanted (None: one draw).
        max_points: Fresh points per block at most (the first ones; None: no cap).
        factor, floor, trim: The rule (see UnseenReport).
        display: The run's Progress display, for the warning's line on stderr (None: the
            UserWarning only).
        warn: False records the verdict without warning.

    Attributes:
        report: The latest UnseenReport, or None.
        every_epochs: The schedule in use (set by on_start).
        skipped: Why the check does not run (a PINN loss, no point set to redraw), or None.
        seed: The fresh draw's seed (set by on_start).
    """

    def __init__(
        self,
        every: int | None = None,
        *,
        sampler: Callable[..., Sequence[Block]] | None = None,
        seed_offset: int = UNSEEN_SEED_OFFSET,
        min_points: int | None = DEFAULT_MIN_POINTS,
        max_points: int | None = DEFAULT_MAX_POINTS,
        factor: float = DEFAULT_FACTOR,
        floor: float = DEFAULT_FLOOR,
        trim: float = DEFAULT_TRIM,
        display: Progress | None = None,
        warn: bool = True,
    ) -> None:
        if every is not None and (
            isinstance(every, bool) or not isinstance(every, int) or every < 1
        ):
            raise ValueError(f"every must be a positive integer or None; got {every!r}")
        for what, n in (("min_points", min_points), ("max_points", max_points)):
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise ValueError(f"{what} must be a positive integer or None; got {n!r}")
        if not (isinstance(factor, (int, float)) and 1 <= factor < math.inf):
            raise ValueError(f"factor must be a finite number >= 1; got {factor!r}")
        if not (isinstance(floor, (int, float)) and 0 <= floor < math.inf):
            raise ValueError(f"floor must be a finite number >= 0; got {floor!r}")
        if not (isinstance(trim, (int, float)) and 0 <= trim < 0.5):
            raise ValueError(f"trim must be a fraction in [0, 0.5); got {trim!r}")
        self.every, self.sampler, self.seed_offset = every, sampler, seed_offset
        self.sizes = _Sizes(min_points, max_points)
        self.factor, self.floor, self.trim = float(factor), float(floor), float(trim)
        self.display, self.warn = display, warn
        self.report: UnseenReport | None = None
        self.every_epochs = every or 1
        self.skipped: str | None = None
        self.seed: int | None = None
        self._fresh: list[BoundBlock] = []
        self._not_redrawn: tuple[str, ...] = ()
        self._name = ""

    # -------------------------------------------------------------- set-up
    def _drawer(self, trainer: Trainer) -> Callable[[int], Sequence[Block]]:
        if self.sampler is not None:
            sampler = self.sampler
            return lambda seed: list(sampler(seed=seed))
        if trainer.problem is None:
            raise ValueError("UnseenCheck needs a sampler, or a trainer made with a problem")
        problem = redrawable(trainer.problem)
        param = trainer.params[0]
        return lambda seed: list(problem.flux_terms(seed, param.dtype, param.device))

    def on_start(self, trainer: Trainer) -> None:
        self.report, self.skipped, self._fresh, self._not_redrawn = None, None, [], ()
        self._name = trainer.name
        target = trainer.target_epochs
        self.every_epochs = self.every or max(DEFAULT_EVERY, math.ceil(target / DEFAULT_CHECKS))
        al = trainer.al
        if al is None:
            self.skipped = "the unseen-point check is for the flux form"
            return
        self.seed = trainer.seed + self.seed_offset
        param = trainer.params[0]
        spec = mlp_spec(trainer.model)
        how = (spec.weights[0].shape[1], spec.weights[-1].shape[0], param.dtype, param.device)
        draw = self._drawer(trainer)
        try:
            with _own_rng(param.device):
                self._fresh, self._not_redrawn = _fresh_blocks(
                    draw, self.seed, al.bound, self.sizes, how
                )
        except (ValueError, TypeError, KeyError, RuntimeError) as exc:
            # a diagnostic must not end the run: say why it cannot check, and train on
            self.skipped = f"the fresh points could not be drawn ({exc})"
            warnings.warn(f"{self._name}: unseen-point check off: {self.skipped}", stacklevel=2)
            return
        if not self._fresh:
            self.skipped = "no point set changes with the seed (fixed points): nothing unseen"

    # -------------------------------------------------------------- checks
    def check(self, trainer: Trainer, epoch: int | None = None) -> UnseenReport | None:
        """Runs the check now and notes it in the history at `epoch` (default: the trainer's
        epochs completed); None when the check does not run (see :attr:`skipped`)."""
        if self.skipped is not None or trainer.al is None or not self._fresh:
            return None
        epoch = trainer.epoch if epoch is None else epoch
        report = check_unseen(
            trainer.model,
            list(trainer.al.bound.values()),
            self._fresh,
            epoch=epoch,
            backend=trainer.al.backend,
            factor=self.factor,
            floor=self.floor,
            trim=self.trim,
            not_redrawn=self._not_redrawn,
        )
        self.report = report
        if epoch >= 1:
            trainer.history.note(
                epoch,
                train_residual=report.train_residual,
                unseen_residual=report.unseen_residual,
                unseen_max_violation=report.unseen_max_violation,
            )
        return report

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        if record.epoch % self.every_epochs == 0 or record.epoch == trainer.target_epochs:
            self.check(trainer, record.epoch)
        return None

    def on_end(self, trainer: Trainer) -> None:
        if self.report is None or self.report.epoch != trainer.epoch:
            self.check(trainer)  # a run stopped early, or one with no epoch left to run
        report = self.report
        if report is None or not report.untrustworthy or not self.warn:
            return
        redrawn = any(getattr(cb, "redraws_points", False) for cb in trainer.callbacks)
        msg = report.message(self._name, redrawn)
        if self.display is not None:
            self.display.note(f"warning: {msg}")
        warnings.warn(msg, UnseenPointsWarning, stacklevel=2)

    # -------------------------------------------------------------- results
    def results(self) -> dict[str, Any] | None:
        """What results.json holds under "unseen": the last report's figures
        (:meth:`UnseenReport.to_dict`) with the fresh draw's seed and the schedule, or
        {"skipped": why}; None before a run."""
        if self.skipped is not None:
            return {"skipped": self.skipped}
        if self.report is None:
            return None
        return {**self.report.to_dict(), "seed": self.seed, "every": self.every_epochs}
