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
  RESOLUTION_LIMIT (1: the whole range within one spacing) it warns, unless the training points
  themselves are known and lie across the layer there: h_i treats them as a grid along the
  inputs, while random points (or a grid cut obliquely) put many distinct depths into a layer
  narrower than h. So where the run's points are given, the check looks at the layer at the
  worst place (width w = range / |grad y_k|, along grad y_k) and counts which of LAYER_BINS
  equal slices of its depth hold a training point within LAYER_NEIGHBOURHOOD spacings; when
  LAYER_SEEN_BINS of LAYER_BINS of the slices that lie in the domain do (a layer at the domain's
  edge has only half of them inside), the points see the layer and the rule stays quiet.
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
from typing import Any

import torch
from torch import Tensor

from fluxkern import ops
from fluxkern.blocks import BoundBlock, Objective
from fluxkern.nn import mlp_spec
from fluxkern.training.conditioning_rules import (
    LAYER_BINS,
    LAYER_NEIGHBOURHOOD,
    LAYER_SEEN_BINS,
    MAGNITUDE_FACTOR,
    RESOLUTION_LIMIT,
    ZERO_FRACTION,
    ConditioningReport,
    ConditioningWarning,
    OutputCheck,
    redraw_method,
)

__all__ = [
    "CONDITIONING_SEED_OFFSET",
    "CORNER_SPACINGS",
    "FRESH_BOUNDARY_POINTS",
    "FRESH_POINTS",
    "LAYER_BINS",
    "LAYER_NEIGHBOURHOOD",
    "LAYER_SEEN_BINS",
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
    "objective_x",
    "redraw_method",
]

# Points within this many spacings (along every input) of a corner of the domain's bounding box
# are left out of the under-resolution rule in two or more dimensions: at a corner where the
# boundary data jump (cavity's lid corners) the exact answer itself changes by its whole range
# within any distance, and a smooth network's ratio decays like 1 / distance (the committed
# cavity run: 44 at the corner, 1.3 beyond 1 spacing, 0.86 beyond 2, 0.73 beyond 3). A corner is
# a point, not a region; the figure with the corners is reported beside (step_all). In one
# dimension the corners are the whole boundary (convection_diffusion's layer): nothing is left
# out.
CORNER_SPACINGS = 3.0
# Fresh points: a Sobol draw of the interior and one of the boundary (layers and corners live
# there), with the run's seed + CONDITIONING_SEED_OFFSET.
FRESH_POINTS = 4096
FRESH_BOUNDARY_POINTS = 1024
CONDITIONING_SEED_OFFSET = 2_000_029


def objective_points(bound: list[BoundBlock]) -> int:
    """The objective's training points: the points of the distinct point sets of the objective
    blocks (of all blocks when there is no objective)."""
    blocks = [b for b in bound if isinstance(b.block, Objective)] or list(bound)
    seen: dict[tuple[int, tuple[int, ...]], int] = {}
    for b in blocks:
        seen[(b.x.data_ptr(), tuple(b.x.shape))] = b.block.n
    return sum(seen.values())


def objective_x(bound: list[BoundBlock]) -> Tensor | None:
    """The objective's training points (of its distinct point sets; of all blocks when there is
    no objective), [N, d], or None without blocks."""
    blocks = [b for b in bound if isinstance(b.block, Objective)] or list(bound)
    seen: dict[tuple[int, tuple[int, ...]], Tensor] = {}
    for b in blocks:
        seen.setdefault((b.x.data_ptr(), tuple(b.x.shape)), b.x)
    if not seen:
        return None
    return torch.cat([x.detach().reshape(x.shape[0], -1) for x in seen.values()])


def _layer(
    train_x: Tensor, p: Tensor, g: Tensor, rng: float, h: Tensor, lo: Tensor, hi: Tensor
) -> tuple[float, int, int, int]:
    """The training points in the layer at p of an output with gradient g and range rng (the
    layer: depth within w / 2 of p along g, w = rng / |g|; the points: within LAYER_NEIGHBOURHOOD
    spacings of p). Returns (w, points, depth slices of LAYER_BINS that hold one, slices whose
    centre lies in the bounding box [lo, hi])."""
    gn = float(g.norm())
    if not gn > 0 or not rng > 0:
        return math.inf, 0, 0, 0
    w = rng / gn
    centres = (torch.arange(LAYER_BINS, dtype=p.dtype, device=p.device) + 0.5) / LAYER_BINS - 0.5
    at = p + centres[:, None] * w * (g / gn)  # [LAYER_BINS, d]
    tol = 1e-12 * (hi - lo).to(p)
    in_box = ((at >= lo.to(p) - tol) & (at <= hi.to(p) + tol)).all(1)
    z = train_x.to(p) - p  # [N, d]
    near = (z / h).square().sum(1) <= LAYER_NEIGHBOURHOOD**2  # [N]
    depth = z @ (g / gn) / w  # [N] in widths
    inside = near & (depth.abs() <= 0.5)
    slices = ((depth[inside] + 0.5) * LAYER_BINS).floor().clamp(0, LAYER_BINS - 1)
    return w, int(inside.sum()), int(slices.unique().numel()), int(in_box.sum())


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
    train_x: Tensor | None = None,
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
        train_x: The objective's training points [N, d] (:func:`objective_x`), or None: with
            them an output over the resolution limit whose layer they lie across is not
            flagged (the module doc); without them the ratio alone decides.

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
        layer: tuple[float | None, int | None, int | None, int | None] = (None,) * 4
        if train_x is not None and float(smax[k]) > resolution_limit * float(rng[k]) > 0:
            i = int(arg[k])
            w, *counts = _layer(train_x, x[i], jac[i, k], float(rng[k]), h, lo, hi)
            layer = (w if math.isfinite(w) else None, *counts)
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
                *layer,
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
    kwargs.setdefault("train_x", objective_x(bound))
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
        bound = list(al.bound.values())
        report = check_conditioning(
            problem,
            trainer.model,
            objective_points(bound),
            seed=trainer.seed,
            backend=al.backend,
            train_x=objective_x(bound),
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
