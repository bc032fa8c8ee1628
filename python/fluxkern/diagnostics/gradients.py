"""gradient_sensitivity: how noisy the parameter gradient of each loss order is.

At one network (initialisation, or a trained flux run) and one point draw it measures, per
order, the relative gradient change under random weight perturbations and under output
perturbations, and per-layer gradient statistics (variance, kurtosis, cosine between two
point draws). The plots are drawn by :mod:`fluxkern.plots`.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fluxkern import plots
from fluxkern.diagnostics.common import _resolve_problem, _Run
from fluxkern.diagnostics.losses import ORDER_LOSSES, ORDERS, _gradient, _Losses
from fluxkern.diagnostics.perturbation import OutputPerturbation
from fluxkern.nn import MLP
from fluxkern.problems.base import Problem
from fluxkern.runfiles import write_file, write_json

__all__ = [
    "OUTPUT_MAGNITUDES",
    "SECOND_DRAW_OFFSET",
    "WEIGHT_MAGNITUDES",
    "gradient_sensitivity",
]

WEIGHT_MAGNITUDES = (1e-4, 1e-3, 1e-2, 1e-1)  # ||delta|| / ||W|| per tensor
OUTPUT_MAGNITUDES = (1e-4, 1e-3, 1e-2, 1e-1)  # eps in y + eps (smooth + rough)
SECOND_DRAW_OFFSET = 1000  # the second point set is drawn with seed + this


def _quartiles(vals: list[float]) -> dict[str, Any]:
    a = np.asarray(vals, dtype=float)
    q25, q50, q75 = np.percentile(a, [25, 50, 75])
    return {"median": float(q50), "q25": float(q25), "q75": float(q75), "samples": a.tolist()}


def _layer_stats(g: Tensor) -> dict[str, float]:
    g = g.double()
    mean = g.mean()
    var = ((g - mean) ** 2).mean()
    kurt = ((g - mean) ** 4).mean() / var**2 - 3.0 if var > 0 else torch.tensor(math.nan)
    return {"variance": float(var), "excess_kurtosis": float(kurt), "norm": float(g.norm())}


def _cosine(a: Tensor, b: Tensor) -> float:
    den = a.norm() * b.norm()
    return float((a @ b) / den) if den > 0 else math.nan


def gradient_sensitivity(
    problem: Problem | str,
    seed: int = 0,
    samples: int = 16,
    out: str | None = None,
    weight_magnitudes: tuple[float, ...] = WEIGHT_MAGNITUDES,
    output_magnitudes: tuple[float, ...] = OUTPUT_MAGNITUDES,
    dtype: torch.dtype = torch.float64,
    run: str | None = None,
) -> dict[str, Any]:
    """Gradient sensitivity of the order 0, 1 and 2 losses at initialisation (or of a run).

    The network is the flux form's (seeded with `seed`, as fluxkern.solve builds it); the points
    are the problem's (seeded with `seed`; the second draw with seed + SECOND_DRAW_OFFSET). All
    random draws come from one torch.Generator seeded with `seed`, and every order sees the same
    weight perturbations and output perturbations.

    Args:
        problem: A Problem with a PINN form, or its registered name.
        seed: Seed of the network, the points and the perturbations.
        samples: K, the number of random perturbations per magnitude.
        out: Folder for gradients.json, sensitivity.png and histograms.png (None: no files).
        weight_magnitudes: Relative sizes ||delta_T|| / ||T|| of the weight perturbations (per
            tensor; biases, zero at initialisation, stay unperturbed there).
        output_magnitudes: Sizes eps of the output perturbation y + eps p(x).
        dtype: Parameter and point dtype (a run's own dtype when `run` is given).
        run: A flux-form run folder (model.pt): measure at its trained weights, with its trained
            multipliers for order 1 and its point seed, instead of at initialisation.

    Returns:
        The numbers (what gradients.json holds): per order the loss, the gradient norm,
        "weight_perturbation" and "output_perturbation" ({"magnitudes", "median", "q25", "q75",
        "samples"}: relative gradient changes ||g' - g|| / ||g||), "layers" (per layer: variance,
        excess kurtosis, norm, cosine between the two point draws) and "cosine_two_draws".

    Raises:
        ValueError: Unknown problem, no PINN form, or samples < 1.
    """
    from fluxkern.run_outputs import machine, versions

    problem = _check_arguments(problem, samples, weight_magnitudes, output_magnitudes)
    t0 = time.perf_counter()
    s = _setup(problem, seed, samples, dtype, run)
    result = _header(problem, s, seed, samples, run)
    grads_a: dict[int, Tensor] = {}
    for order in ORDERS:
        result["orders"][str(order)], grads_a[order] = _measure_order(
            s, order, weight_magnitudes, output_magnitudes
        )
    result["time_s"] = time.perf_counter() - t0
    result["versions"] = versions()
    result["machine"] = machine()
    if out:
        _write(out, result, grads_a, s)
    return result


def _check_arguments(
    problem: Problem | str,
    samples: int,
    weight_magnitudes: tuple[float, ...],
    output_magnitudes: tuple[float, ...],
) -> Problem:
    """The problem (resolved from its name) after checking the arguments.

    Raises:
        ValueError: Unknown problem, no PINN form, samples < 1 or non-positive magnitudes.
    """
    problem = _resolve_problem(problem)
    if not problem.has_pinn():
        raise ValueError(
            f"problem {problem.name!r} has no PINN form; the sensitivity comparison needs both"
        )
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    for name, mags in (("weight", weight_magnitudes), ("output", output_magnitudes)):
        if not mags or any(not (float(v) > 0) for v in mags):
            raise ValueError(f"{name}_magnitudes must be positive numbers, got {mags!r}")
    return problem


@dataclass
class _Setup:
    """Everything one measurement shares across the three orders.

    Attributes:
        model: The flux form's network.
        dtype: Its dtype (a trained run's own).
        point_seed: Seed of the first point draw.
        params: ``model.parameters()`` as a list.
        theta: Detached copies of the unperturbed parameters.
        layer_slices: ``(name, start, stop)`` of each layer in the flat gradient.
        losses: The three losses on the first point draw.
        second: The three losses on the second point draw.
        directions: ``samples`` weight directions (one tensor per parameter each).
        perturbations: ``samples`` output perturbations.
        masks: Per order, the flat-gradient entries the layer statistics use.
    """

    model: MLP
    dtype: torch.dtype
    point_seed: int
    params: list[torch.nn.Parameter]
    theta: list[Tensor]
    layer_slices: list[tuple[str, int, int]]
    losses: _Losses
    second: _Losses
    directions: list[list[Tensor]]
    perturbations: list[OutputPerturbation]
    masks: dict[int, Tensor]


def _network(
    problem: Problem, seed: int, dtype: torch.dtype, run: str | None, device: torch.device
) -> tuple[MLP, torch.dtype, int, _Run | None]:
    """The network at initialisation (seeded) or a trained flux run's.

    Returns:
        ``(model, dtype, point_seed, trained run or None)``.
    """
    from fluxkern.solver import build_model

    trained: _Run | None = None
    point_seed = seed
    if run is not None:
        trained = _Run(run, problem)
        if trained.formulation != "flux":
            raise ValueError(
                f"{run} is a {trained.formulation} run; the three losses need the flux form's "
                "network (outputs u and fluxes)"
            )
        model, dtype, point_seed = trained.model, trained.dtype, trained.seed
    else:
        torch.manual_seed(seed)
        model = build_model(problem, "flux", dtype, device)
    return model, dtype, point_seed, trained


def _layer_slices(model: MLP) -> list[tuple[str, int, int]]:
    """``(name, start, stop)`` of each linear layer (weight, then bias) in the flat gradient."""
    layer_slices: list[tuple[str, int, int]] = []
    start = 0
    for i, layer in enumerate(model.layers):
        size = layer.weight.numel() + layer.bias.numel()
        lname = f"layer {i + 1} ({layer.in_features}->{layer.out_features})"
        layer_slices.append((lname, start, start + size))
        start += size
    return layer_slices


def _weight_directions(
    params: list[torch.nn.Parameter], samples: int, gen: torch.Generator
) -> list[list[Tensor]]:
    """K weight directions, each tensor scaled to that tensor's norm (the same for every order)."""
    directions = []
    for _ in range(samples):
        dirs = []
        for p in params:
            r = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            pn, rn = p.detach().norm(), r.norm()
            dirs.append(r * (pn / rn) if pn > 0 and rn > 0 else torch.zeros_like(p))
        directions.append(dirs)
    return directions


def _order_masks(
    model: MLP,
    params: list[torch.nn.Parameter],
    layer_slices: list[tuple[str, int, int]],
    losses: _Losses,
) -> dict[int, Tensor]:
    """Per order, the flat-gradient entries that can be non-zero.

    Orders 0 and 2 read only some outputs; the output-layer rows of the others get exactly
    zero gradient, which the layer statistics leave out (they would only inflate kurtosis).
    """
    m = model.out_features
    used_rows = {0: [losses.ucol], 1: list(range(m)), 2: list(losses.fields.cols)}
    masks: dict[int, Tensor] = {}
    last = model.layers[-1]
    w_start = layer_slices[-1][1]
    for order, rows in used_rows.items():
        mask = torch.ones(sum(p.numel() for p in params), dtype=torch.bool)
        keep = torch.zeros(m, dtype=torch.bool)
        keep[rows] = True
        mask[w_start : w_start + last.weight.numel()] = (
            keep[:, None].expand_as(last.weight).reshape(-1)
        )
        mask[w_start + last.weight.numel() : layer_slices[-1][2]] = keep
        masks[order] = mask
    return masks


def _setup(
    problem: Problem, seed: int, samples: int, dtype: torch.dtype, run: str | None
) -> _Setup:
    """The network, both point draws and the random perturbations, drawn in a fixed order."""
    device = torch.device("cpu")
    model, dtype, point_seed, trained = _network(problem, seed, dtype, run, device)
    params = list(model.parameters())
    layer_slices = _layer_slices(model)
    losses = _Losses(problem, model, point_seed, dtype, device)
    second = _Losses(problem, model, point_seed + SECOND_DRAW_OFFSET, dtype, device)
    if trained is not None:  # the trained multipliers (the second draw keeps the initial ones)
        losses.al.load_state_dict(trained.dual_state)
    gen = torch.Generator().manual_seed(seed)
    directions = _weight_directions(params, samples, gen)
    m = model.out_features
    perturbations = [
        OutputPerturbation(m, model.input_shift, model.input_scale, gen) for _ in range(samples)
    ]
    theta = [p.detach().clone() for p in params]
    masks = _order_masks(model, params, layer_slices, losses)
    return _Setup(
        model=model,
        dtype=dtype,
        point_seed=point_seed,
        params=params,
        theta=theta,
        layer_slices=layer_slices,
        losses=losses,
        second=second,
        directions=directions,
        perturbations=perturbations,
        masks=masks,
    )


def _header(
    problem: Problem, s: _Setup, seed: int, samples: int, run: str | None
) -> dict[str, Any]:
    """The result's description of the measurement, with an empty "orders"."""
    model, losses = s.model, s.losses
    return {
        "problem": problem.name,
        "seed": seed,
        "run": run,
        "at": "initialisation" if run is None else f"the trained weights of {run}",
        "point_seed": s.point_seed,
        "samples": samples,
        "dtype": str(s.dtype).replace("torch.", ""),
        "network": [model.in_features, problem.width, problem.depth, model.out_features],
        "outputs": list(problem.output_names),
        "parameters": [n for n, _ in model.named_parameters()],
        "points": losses.n_points,
        "order0_points": int(losses.x0.shape[0]),
        "second_draw_seed": s.point_seed + SECOND_DRAW_OFFSET,
        "backend": losses.al.backend,
        "output_perturbation_spec": s.perturbations[0].spec(),
        "orders": {},
    }


def _weight_perturbation(
    s: _Setup, order: int, magnitudes: tuple[float, ...], g0: Tensor, g0n: float
) -> dict[str, list]:
    """(a) Relative gradient changes under the weight perturbations, per magnitude."""
    wp: dict[str, list] = {"magnitudes": [float(v) for v in magnitudes]}
    per_mag = []
    for mag in magnitudes:
        vals = []
        for dirs in s.directions:
            with torch.no_grad():
                for p, t, dv in zip(s.params, s.theta, dirs, strict=True):
                    p.copy_(t + mag * dv)
            g, _ = _gradient(s.model, lambda o=order: s.losses.loss(o))
            with torch.no_grad():
                for p, t in zip(s.params, s.theta, strict=True):
                    p.copy_(t)
            vals.append(float((g - g0).norm()) / g0n)
        per_mag.append(_quartiles(vals))
    for key in ("median", "q25", "q75", "samples"):
        wp[key] = [q[key] for q in per_mag]
    return wp


def _output_perturbation(
    s: _Setup, order: int, magnitudes: tuple[float, ...], g0: Tensor, g0n: float
) -> dict[str, list]:
    """(c) Relative gradient changes under the output perturbations, per magnitude."""
    op: dict[str, list] = {"magnitudes": [float(v) for v in magnitudes]}
    per_eps = []
    for eps in magnitudes:
        vals = []
        for pert in s.perturbations:
            g, _ = _gradient(s.model, lambda o=order, e=eps, q=pert: s.losses.loss(o, (e, q)))
            vals.append(float((g - g0).norm()) / g0n)
        per_eps.append(_quartiles(vals))
    for key in ("median", "q25", "q75", "samples"):
        op[key] = [q[key] for q in per_eps]
    return op


def _layers(s: _Setup, order: int, g0: Tensor, g_b: Tensor) -> list[dict[str, Any]]:
    """(b) Per-layer statistics of the gradient and the cosine between the two point draws."""
    layers = []
    for lname, a, b in s.layer_slices:
        sel = s.masks[order][a:b]
        st: dict[str, Any] = _layer_stats(g0[a:b][sel])
        st["cosine_two_draws"] = _cosine(g0[a:b], g_b[a:b])
        st["name"] = lname
        st["size"] = b - a
        layers.append(st)
    return layers


def _measure_order(
    s: _Setup,
    order: int,
    weight_magnitudes: tuple[float, ...],
    output_magnitudes: tuple[float, ...],
) -> tuple[dict[str, Any], Tensor]:
    """The numbers of one order, and its unperturbed gradient on the first draw."""
    g0, loss0 = _gradient(s.model, lambda o=order: s.losses.loss(o))
    g0n = float(g0.norm())
    g_b, _ = _gradient(s.model, lambda o=order: s.second.loss(o))
    wp = _weight_perturbation(s, order, weight_magnitudes, g0, g0n)
    op = _output_perturbation(s, order, output_magnitudes, g0, g0n)
    layers = _layers(s, order, g0, g_b)
    numbers = {
        "loss_kind": ORDER_LOSSES[order],
        "loss": loss0,
        "grad_norm": g0n,
        "weight_perturbation": wp,
        "output_perturbation": op,
        "layers": layers,
        "cosine_two_draws": _cosine(g0, g_b),
        "excess_kurtosis": _layer_stats(g0[s.masks[order]])["excess_kurtosis"],
    }
    return numbers, g0


def _write(out: str, result: dict[str, Any], grads_a: dict[int, Tensor], s: _Setup) -> None:
    """gradients.json, sensitivity.png and histograms.png into ``out``."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "gradients.json")
    write_file(path, lambda fh: write_json(fh, result, 1), "nothing else was written")
    plots.plot_sensitivity(result, os.path.join(out, "sensitivity.png"))
    plots.plot_histograms(
        result, grads_a, s.masks, s.layer_slices, os.path.join(out, "histograms.png")
    )
