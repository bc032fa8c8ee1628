"""The unseen-point check's evaluation: each block's residual figures at the current parameters
(:func:`term_stats`), the check once on given training and fresh blocks (:func:`check_unseen`),
the fresh points (drawn with other seeds; :func:`redrawable` for grid point sets) and the check
of a trained network after the fact (:func:`check_trained`). The rules and report are
:mod:`fluxkern.training.unseen_rules`, the callback :mod:`fluxkern.training.unseen`."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fluxkern import ops
from fluxkern.blocks import Block, BoundBlock, Objective
from fluxkern.nn import mlp_spec
from fluxkern.training.point_blocks import concat_blocks, same_points, take_rows
from fluxkern.training.unseen_rules import (
    _DRAW_STRIDE,
    DEFAULT_FACTOR,
    DEFAULT_FLOOR,
    DEFAULT_MAX_DRAWS,
    DEFAULT_MAX_POINTS,
    DEFAULT_MIN_POINTS,
    DEFAULT_TRIM,
    UNSEEN_SEED_OFFSET,
    TermCheck,
    UnseenReport,
)

__all__ = ["check_trained", "check_unseen", "redrawable", "term_stats"]


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
        >>> options = state["options"]
        >>> check_trained(problem, model, options["seed"]).residual_ratio

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
