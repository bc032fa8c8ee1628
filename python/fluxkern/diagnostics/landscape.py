"""loss_landscape: a trained run's training loss on a 2-D slice through its weights.

Two filter-normalised random directions, the multipliers frozen; the numbers (minima,
roughness, ratios on rings) are measured here and the figure is drawn by :mod:`fluxkern.plots`.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fluxkern import plots
from fluxkern.diagnostics.common import _Run
from fluxkern.nn import MLP
from fluxkern.problems.base import Problem
from fluxkern.runfiles import write_file, write_json

__all__ = ["loss_landscape"]


def _directions(model: MLP, gen: torch.Generator) -> list[Tensor]:
    """A random direction per weight tensor, each row scaled to the trained row's norm."""
    dirs = []
    for layer in model.layers:
        w = layer.weight.detach()
        r = torch.randn(w.shape, generator=gen, dtype=torch.float64).to(w.dtype)
        r = r * (w.norm(dim=1, keepdim=True) / r.norm(dim=1, keepdim=True).clamp_min(1e-300))
        dirs.append(r)
    return dirs


def _landscape_one(run: _Run, grid: int, seed: int, span: float) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    d1 = _directions(run.model, gen)
    d2 = _directions(run.model, gen)
    weights = [layer.weight for layer in run.model.layers]
    w0 = [w.detach().clone() for w in weights]
    origin = run.loss()
    coords = torch.linspace(-span, span, grid, dtype=torch.float64)
    vals = np.empty((grid, grid))
    t0 = time.perf_counter()
    try:
        for i, a in enumerate(coords.tolist()):
            for j, b in enumerate(coords.tolist()):
                with torch.no_grad():
                    for w, base, u, v in zip(weights, w0, d1, d2, strict=True):
                        w.copy_(base + a * u + b * v)
                vals[i, j] = run.loss()
    finally:
        with torch.no_grad():
            for w, base in zip(weights, w0, strict=True):
                w.copy_(base)
    elapsed = time.perf_counter() - t0
    finite = np.isfinite(vals)
    shift = 0.0
    if finite.any() and vals[finite].min() <= 0:  # signed constraints can make L negative
        spread = vals[finite].max() - vals[finite].min()
        shift = -vals[finite].min() + max(1e-12 * spread, 1e-300)
    logv = np.log10(np.where(finite, vals + shift, np.nan))
    # local minima of the log loss among the 8 neighbours (interior of the grid)
    c = logv[1:-1, 1:-1]
    is_min = np.ones_like(c, dtype=bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                nb = logv[1 + di : grid - 1 + di, 1 + dj : grid - 1 + dj]
                is_min &= c < nb
    h = 2 * span / (grid - 1)
    lap = logv[2:, 1:-1] + logv[:-2, 1:-1] + logv[1:-1, 2:] + logv[1:-1, :-2] - 4 * logv[1:-1, 1:-1]
    aa, bb = np.meshgrid(coords.numpy(), coords.numpy(), indexing="ij")
    radius = np.hypot(aa, bb)
    rings = {}
    for r in (0.1, 0.25, 0.5, 1.0):
        sel = (np.abs(radius - r) <= 0.5 * h + 1e-12) & finite
        if r <= span and sel.any():
            rings[str(r)] = float(np.median(vals[sel] / origin)) if origin != 0 else math.nan
    k = int(np.nanargmin(np.where(finite, vals, np.inf)))
    return {
        "run": run.run_dir,
        "problem": run.problem.name,
        "formulation": run.formulation,
        "backend": run.backend,
        "grid": grid,
        "span": span,
        "direction_seed": seed,
        "alpha": coords.tolist(),
        "beta": coords.tolist(),
        "loss": vals.tolist(),
        "origin_loss": origin,
        "min_loss": float(np.nanmin(np.where(finite, vals, np.nan))),
        "max_loss": float(np.nanmax(np.where(finite, vals, np.nan))),
        "argmin": [float(aa.flat[k]), float(bb.flat[k])],
        "log_shift": shift,
        "median_ratio_on_ring": rings,
        "local_minima": int(is_min.sum()) if grid > 2 else 0,
        "roughness": float(np.nanmean(np.abs(lap))) if grid > 2 else math.nan,
        "evaluations": grid * grid,
        "time_s": elapsed,
        "ms_per_evaluation": 1e3 * elapsed / (grid * grid),
    }


def loss_landscape(
    run_dir: str,
    grid: int = 64,
    out: str | None = None,
    compare: str | None = None,
    seed: int = 0,
    problem: Problem | None = None,
    span: float = 1.0,
) -> dict[str, Any]:
    """The training loss of a trained run on a 2-D slice through its weights.

    Two random directions (seeded) are drawn per weight matrix and each row is scaled to the
    norm of the trained matrix's row (filter normalisation; biases are not moved). The loss is
    the run's full training loss with its trained multipliers frozen (flux form, through the
    fused op) or the PINN loss (formulation "pinn"), at theta + alpha d1 + beta d2 for alpha, beta
    on a grid x grid lattice over [-span, span]^2.

    Args:
        run_dir: A folder written by fluxkern.solve (holding model.pt).
        grid: Points per axis (>= 2; odd counts include the origin).
        out: Folder for landscape.json and landscape.png (None: no files).
        compare: A second run of the same problem (e.g. the PINN run), plotted side by side.
        seed: Seed of the random directions (the same for both runs).
        problem: The problem instance the run used, when it is not the registry's default
            (e.g. fewer points); by default the registered problem of that name.
        span: Half-width of the square.

    Returns:
        {"loss": grid x grid (alpha index first), "alpha", "beta", "origin_loss", "min_loss",
        "max_loss", "argmin", "median_ratio_on_ring" (median L / L(0) at radii 0.1 .. 1),
        "local_minima", "roughness" (mean |discrete Laplacian| of log10 L), timing ...}, and under
        "compare" the same for the second run.

    Raises:
        ValueError: A missing run folder or model.pt, grid < 2, runs of different problems.
    """
    if not isinstance(grid, int) or isinstance(grid, bool) or grid < 2:
        raise ValueError(f"grid must be an integer >= 2, got {grid!r}")
    if not (isinstance(span, (int, float)) and span > 0):
        raise ValueError(f"span must be a positive number, got {span!r}")
    run = _Run(run_dir, problem)
    other = _Run(compare, problem or run.problem) if compare else None
    if other is not None and other.problem.name != run.problem.name:
        raise ValueError(f"{compare} is a {other.problem.name} run, {run_dir} a {run.problem.name}")
    result = _landscape_one(run, grid, seed, float(span))
    if other is not None:
        result["compare"] = _landscape_one(other, grid, seed, float(span))
    if out:
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, "landscape.json")
        write_file(path, lambda fh: write_json(fh, result, None), "nothing else was written")
        panels = [result] + ([result["compare"]] if other is not None else [])
        plots.plot_landscapes(panels, os.path.join(out, "landscape.png"))
    return result
