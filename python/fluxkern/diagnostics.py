"""Diagnostics: gradient sensitivity per derivative order, and loss landscapes of trained runs.

gradient_sensitivity(problem) measures, on one network at initialisation and one set of points,
how noisy the back-propagated parameter gradient is for three losses of increasing derivative
order:

    order 0: mean squared error of u against the exact solution (no derivative of the network);
    order 1: the flux form's augmented-Lagrangian loss with the initial multipliers (first
             derivatives only);
    order 2: the PINN form's loss (second derivatives by autograd).

All three are evaluated on the flux form's network (outputs u, fluxes...); the PINN loss reads the
PINN outputs (u) from it through a small adapter module. It reports the relative change of the
gradient under random weight perturbations and under a smooth-plus-rough perturbation added to
the network output, and per-layer statistics of the gradient (variance, kurtosis, cosine between
two independent draws of the collocation points).

loss_landscape(run_dir) loads a trained run (model.pt), freezes its multipliers and evaluates the
full training loss on a grid over two filter-normalised random directions.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fluxkern.blocks import Constraint, Objective
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.nn import MLP
from fluxkern.problems.base import Problem

__all__ = [
    "OUTPUT_MAGNITUDES",
    "WEIGHT_MAGNITUDES",
    "OutputPerturbation",
    "gradient_sensitivity",
    "loss_landscape",
]

ORDERS = (0, 1, 2)
ORDER_LOSSES = {
    0: "mean squared error of u against the exact solution",
    1: "flux form: augmented Lagrangian with the initial multipliers",
    2: "PINN form: second-order residual, plain penalties",
}
WEIGHT_MAGNITUDES = (1e-4, 1e-3, 1e-2, 1e-1)  # ||delta|| / ||W|| per tensor
OUTPUT_MAGNITUDES = (1e-4, 1e-3, 1e-2, 1e-1)  # eps in y + eps (smooth + rough)
SECOND_DRAW_OFFSET = 1000  # the second point set is drawn with seed + this
ROUGH_TERMS = 4
SMOOTH_FREQUENCY = (0.5, 1.5)  # |a| of the smooth term, in standardised inputs
ROUGH_FREQUENCY = (10.0, 30.0)  # |w| of the rough terms, in standardised inputs
MODEL_FILE = "model.pt"


def _resolve_problem(problem: Problem | str) -> Problem:
    from fluxkern import problems

    if isinstance(problem, str):
        try:
            return problems.get(problem)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a Problem or a name, got {type(problem).__name__}")
    return problem


# ---------------------------------------------------------------------------------------------
# output perturbation
# ---------------------------------------------------------------------------------------------
class OutputPerturbation:
    """A smooth-plus-rough function p(x) [N, m] added to a network's outputs.

    In the network's standardised inputs z = (x - shift) / scale, output column c gets

        p_c(z) = sin(a_c . z + phi_c) + R^(-1/2) sum_{r=1..R} sin(w_cr . z + psi_cr),

    with random directions, |a_c| uniform in SMOOTH_FREQUENCY, |w_cr| uniform in ROUGH_FREQUENCY
    and uniform phases. A k-th derivative of the rough part is about |w|^k times larger than the
    part itself, which is what a differential operator in the loss amplifies.

    Args:
        m: Number of outputs.
        shift: Input shift [d] of the network.
        scale: Input scale [d] of the network.
        generator: The random source.
        rough_terms: R.
    """

    def __init__(
        self,
        m: int,
        shift: Tensor,
        scale: Tensor,
        generator: torch.Generator,
        rough_terms: int = ROUGH_TERMS,
    ) -> None:
        d = shift.shape[0]
        kw = {"dtype": torch.float64}
        k = 1 + rough_terms
        dirs = torch.randn(m, k, d, generator=generator, **kw)  # [m, K, d]
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)
        u = torch.rand(m, k, generator=generator, **kw)  # [m, K]
        lo = torch.tensor([SMOOTH_FREQUENCY[0]] + [ROUGH_FREQUENCY[0]] * rough_terms, **kw)
        hi = torch.tensor([SMOOTH_FREQUENCY[1]] + [ROUGH_FREQUENCY[1]] * rough_terms, **kw)
        freq = lo + (hi - lo) * u  # [m, K]
        phase = 2 * math.pi * torch.rand(m, k, generator=generator, **kw)  # [m, K]
        amp = torch.tensor([1.0] + [rough_terms**-0.5] * rough_terms, **kw)  # [K]
        dtype, device = shift.dtype, shift.device
        self.freq = (dirs * freq[..., None]).to(dtype=dtype, device=device)  # [m, K, d]
        self.phase = phase.to(dtype=dtype, device=device)  # [m, K]
        self.amp = amp.to(dtype=dtype, device=device)  # [K]
        self.shift, self.scale = shift, scale

    def _arg(self, x: Tensor) -> Tensor:
        z = (x - self.shift) / self.scale  # [N, d]
        return torch.einsum("nd,mkd->nmk", z, self.freq) + self.phase  # [N, m, K]

    def value(self, x: Tensor) -> Tensor:
        """p(x) [N, m] (differentiable in x to any order)."""
        return (self.amp * torch.sin(self._arg(x))).sum(-1)

    def jacobian(self, x: Tensor) -> Tensor:
        """dp/dx [N, m, d]."""
        c = self.amp * torch.cos(self._arg(x))  # [N, m, K]
        return torch.einsum("nmk,mkd->nmd", c, self.freq) / self.scale

    def spec(self) -> dict[str, Any]:
        return {
            "form": "sin(a.z + phi) + R^-1/2 sum_r sin(w_r.z + psi_r), z = standardised inputs",
            "rough_terms": int(self.amp.shape[0] - 1),
            "smooth_frequency": list(SMOOTH_FREQUENCY),
            "rough_frequency": list(ROUGH_FREQUENCY),
        }


class _Fields(nn.Module):
    """Exposes chosen output columns of a network (the PINN form's outputs of the flux network),
    plus an optional output perturbation eps * p(x) added to all of the network's outputs."""

    def __init__(self, model: nn.Module, cols: list[int]) -> None:
        super().__init__()
        self.model = model
        self.cols = cols
        self.perturbation: tuple[float, OutputPerturbation] | None = None

    def full(self, x: Tensor) -> Tensor:
        y = self.model(x)
        if self.perturbation is not None:
            eps, p = self.perturbation
            y = y + eps * p.value(x)
        return y

    def forward(self, x: Tensor) -> Tensor:
        return self.full(x)[:, self.cols]


# ---------------------------------------------------------------------------------------------
# the three losses
# ---------------------------------------------------------------------------------------------
def _al_torch(al: AugmentedLagrangian, model: MLP, pert: tuple[float, OutputPerturbation] | None):
    """The augmented-Lagrangian loss in torch on top of the fused jet, with an optional output
    perturbation (y, J) -> (y + eps p, J + eps dp/dx). Without one it equals al()."""
    total = None
    for b in al.bound.values():
        t = b.block
        y, jac = model.jet(b.x, backend=al.backend)
        if pert is not None:
            eps, p = pert
            y = y + eps * p.value(b.x)
            jac = jac + eps * p.jacobian(b.x)
        r = b.residuals_torch(y, jac)  # [N, R]
        kw = {"dtype": r.dtype, "device": r.device}
        if isinstance(t, Objective):
            lam = torch.full((t.n_res,), t.weight, **kw)
            mu = torch.zeros(t.n_res, **kw)
            c = r * r
        else:
            assert isinstance(t, Constraint)
            lam, mu = al.multipliers[t.name], al.penalties[t.name]
            c = r * r if t.form == "squared" else r
        red = 1.0 / t.n if t.reduction == "mean" and t.n else 1.0
        loss = red * (lam * c + 0.5 * mu * c * c).sum()
        total = loss if total is None else total + loss
    assert total is not None
    return total


class _Losses:
    """The order 0, 1 and 2 losses of a problem on one flux-form network and one point draw."""

    def __init__(
        self, problem: Problem, model: MLP, seed: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        outs = list(problem.output_names)
        missing = [n for n in problem.pinn_output_names if n not in outs]
        if missing:
            raise ValueError(
                f"{problem.name}: PINN outputs {missing} are not outputs of the flux form "
                f"{outs}; the three losses need one network"
            )
        self.model = model
        self.fields = _Fields(model, [outs.index(n) for n in problem.pinn_output_names])
        terms = problem.flux_terms(seed, dtype, device)
        opts = problem.defaults
        self.al = AugmentedLagrangian(
            model, terms, dual=opts.get("dual", "rmsprop"), **opts.get("dual_options", {})
        )
        self.pinn = problem.pinn_loss(self.fields, seed, dtype, device)
        # order 0: every distinct point of the flux form's blocks
        sets: list[Tensor] = []
        for b in self.al.bound.values():
            if not any(s.shape == b.x.shape and torch.equal(s, b.x) for s in sets):
                sets.append(b.x)
        self.x0 = torch.cat(sets)  # [P, d]
        name = problem.pinn_output_names[0]
        self.ucol = outs.index(name)
        self.u0 = problem.exact(self.x0)[name].to(dtype=dtype, device=device)  # [P]
        self.n_points = {n: int(b.block.n) for n, b in self.al.bound.items()}

    def loss(self, order: int, pert: tuple[float, OutputPerturbation] | None = None) -> Tensor:
        if order == 0:
            self.fields.perturbation = pert
            try:
                u = self.fields.full(self.x0)[:, self.ucol]
            finally:
                self.fields.perturbation = None
            return ((u - self.u0) ** 2).mean()
        if order == 1:
            return self.al() if pert is None else _al_torch(self.al, self.model, pert)
        if order == 2:
            self.fields.perturbation = pert
            try:
                return self.pinn()
            finally:
                self.fields.perturbation = None
        raise ValueError(f"order must be 0, 1 or 2, got {order!r}")


def _gradient(model: nn.Module, fn: Callable[[], Tensor]) -> tuple[Tensor, float]:
    """The flat parameter gradient [P] of fn() and its value."""
    model.zero_grad(set_to_none=True)
    loss = fn()
    loss.backward()
    grads = [
        (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
        for p in model.parameters()
    ]
    model.zero_grad(set_to_none=True)
    return torch.cat(grads).detach(), float(loss.detach())


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
    from fluxkern.solver import build_model, machine, versions

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
    t0 = time.perf_counter()
    device = torch.device("cpu")
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
    params = list(model.parameters())
    names = [n for n, _ in model.named_parameters()]
    layer_slices: list[tuple[str, int, int]] = []
    start = 0
    for i, layer in enumerate(model.layers):
        size = layer.weight.numel() + layer.bias.numel()
        lname = f"layer {i + 1} ({layer.in_features}->{layer.out_features})"
        layer_slices.append((lname, start, start + size))
        start += size
    losses = _Losses(problem, model, point_seed, dtype, device)
    second = _Losses(problem, model, point_seed + SECOND_DRAW_OFFSET, dtype, device)
    if trained is not None:  # the trained multipliers (the second draw keeps the initial ones)
        losses.al.load_state_dict(trained.dual_state)
    gen = torch.Generator().manual_seed(seed)

    # K weight directions, each tensor scaled to that tensor's norm (the same for every order)
    directions = []
    for _ in range(samples):
        dirs = []
        for p in params:
            r = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            pn, rn = p.detach().norm(), r.norm()
            dirs.append(r * (pn / rn) if pn > 0 and rn > 0 else torch.zeros_like(p))
        directions.append(dirs)
    m = model.out_features
    perturbations = [
        OutputPerturbation(m, model.input_shift, model.input_scale, gen) for _ in range(samples)
    ]
    theta = [p.detach().clone() for p in params]
    # Orders 0 and 2 read only some outputs; the output-layer rows of the others get exactly
    # zero gradient, which the layer statistics leave out (they would only inflate kurtosis).
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

    result: dict[str, Any] = {
        "problem": problem.name,
        "seed": seed,
        "run": run,
        "at": "initialisation" if run is None else f"the trained weights of {run}",
        "point_seed": point_seed,
        "samples": samples,
        "dtype": str(dtype).replace("torch.", ""),
        "network": [model.in_features, problem.width, problem.depth, m],
        "outputs": list(problem.output_names),
        "parameters": names,
        "points": losses.n_points,
        "order0_points": int(losses.x0.shape[0]),
        "second_draw_seed": point_seed + SECOND_DRAW_OFFSET,
        "backend": losses.al.backend,
        "output_perturbation_spec": perturbations[0].spec(),
        "orders": {},
    }
    grads_a: dict[int, Tensor] = {}
    for order in ORDERS:
        g0, loss0 = _gradient(model, lambda o=order: losses.loss(o))
        g0n = float(g0.norm())
        grads_a[order] = g0
        g_b, _ = _gradient(model, lambda o=order: second.loss(o))
        # (a) weight perturbations
        wp: dict[str, list] = {"magnitudes": [float(v) for v in weight_magnitudes]}
        per_mag = []
        for mag in weight_magnitudes:
            vals = []
            for dirs in directions:
                with torch.no_grad():
                    for p, t, dv in zip(params, theta, dirs, strict=True):
                        p.copy_(t + mag * dv)
                g, _ = _gradient(model, lambda o=order: losses.loss(o))
                with torch.no_grad():
                    for p, t in zip(params, theta, strict=True):
                        p.copy_(t)
                vals.append(float((g - g0).norm()) / g0n)
            per_mag.append(_quartiles(vals))
        for key in ("median", "q25", "q75", "samples"):
            wp[key] = [q[key] for q in per_mag]
        # (c) output perturbations
        op: dict[str, list] = {"magnitudes": [float(v) for v in output_magnitudes]}
        per_eps = []
        for eps in output_magnitudes:
            vals = []
            for pert in perturbations:
                g, _ = _gradient(model, lambda o=order, e=eps, q=pert: losses.loss(o, (e, q)))
                vals.append(float((g - g0).norm()) / g0n)
            per_eps.append(_quartiles(vals))
        for key in ("median", "q25", "q75", "samples"):
            op[key] = [q[key] for q in per_eps]
        # (b) per-layer statistics
        layers = []
        for lname, a, b in layer_slices:
            sel = masks[order][a:b]
            st = _layer_stats(g0[a:b][sel])
            st["cosine_two_draws"] = _cosine(g0[a:b], g_b[a:b])
            st["name"] = lname
            st["size"] = b - a
            layers.append(st)
        result["orders"][str(order)] = {
            "loss_kind": ORDER_LOSSES[order],
            "loss": loss0,
            "grad_norm": g0n,
            "weight_perturbation": wp,
            "output_perturbation": op,
            "layers": layers,
            "cosine_two_draws": _cosine(g0, g_b),
            "excess_kurtosis": _layer_stats(g0[masks[order]])["excess_kurtosis"],
        }
    result["time_s"] = time.perf_counter() - t0
    result["versions"] = versions()
    result["machine"] = machine()
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "gradients.json"), "w") as fh:
            json.dump(result, fh, indent=1)
        _plot_sensitivity(result, os.path.join(out, "sensitivity.png"))
        _plot_histograms(result, grads_a, masks, layer_slices, os.path.join(out, "histograms.png"))
    return result


# ---------------------------------------------------------------------------------------------
# loss landscape
# ---------------------------------------------------------------------------------------------
class _Run:
    """A trained run rebuilt from run_dir/model.pt: problem, network and its training loss."""

    def __init__(self, run_dir: str, problem: Problem | None = None) -> None:
        path = os.path.join(run_dir, MODEL_FILE)
        if not os.path.isdir(run_dir):
            raise ValueError(f"run folder {run_dir} does not exist")
        if not os.path.isfile(path):
            raise ValueError(
                f"{run_dir} has no {MODEL_FILE} (fluxkern solve writes it into its output folder)"
            )
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets one line
            raise ValueError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
        for key in ("problem", "formulation", "options", "model"):
            if not isinstance(ck, dict) or key not in ck:
                raise ValueError(f"{path}: not a fluxkern model file (no {key!r})")
        if problem is None:
            problem = _resolve_problem(ck["problem"])
        elif problem.name != ck["problem"]:
            raise ValueError(f"{path} is a {ck['problem']} run, not {problem.name}")
        self.run_dir, self.problem = run_dir, problem
        self.formulation = ck["formulation"]
        opts = ck["options"]
        self.dtype = getattr(torch, opts.get("dtype", "float64"))
        device = torch.device("cpu")
        sd = ck["model"]
        n_lin = len([k for k in sd if k.startswith("layers.") and k.endswith(".weight")])
        w0, wl = sd["layers.0.weight"], sd[f"layers.{n_lin - 1}.weight"]
        self.model = MLP(
            w0.shape[1],
            wl.shape[0],
            w0.shape[0],
            n_lin - 1,
            problem.activation,
            dtype=self.dtype,
            device=device,
        )
        self.model.load_state_dict(sd)
        seed = self.seed = int(opts.get("seed", 0))
        self.al: AugmentedLagrangian | None = None
        if self.formulation == "flux":
            dual = self.dual_state = ck.get("dual")
            if not dual:
                raise ValueError(f"{path}: a flux run without multipliers")
            terms = problem.flux_terms(seed, self.dtype, device)
            self.al = AugmentedLagrangian(
                self.model, terms, dual=dual["dual"], **dual.get("options", {})
            )
            try:
                self.al.load_state_dict(dual)
            except ValueError as exc:
                raise ValueError(
                    f"{path}: the saved multipliers do not fit problem {problem.name!r} as "
                    f"rebuilt here ({exc}); pass the problem instance the run used"
                ) from None
            self.backend = self.al.backend
        else:
            for p in self.model.parameters():
                p.requires_grad_(False)  # only input derivatives are needed
            self.pinn = problem.pinn_loss(self.model, seed, self.dtype, device)
            self.backend = "torch autograd (PINN)"

    def loss(self) -> float:
        """The training loss at the model's current weights (multipliers frozen)."""
        if self.al is not None:
            with torch.no_grad():
                return float(self.al())
        return float(self.pinn().detach())


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
        with open(os.path.join(out, "landscape.json"), "w") as fh:
            json.dump(result, fh)
        panels = [result] + ([result["compare"]] if other is not None else [])
        _plot_landscapes(panels, os.path.join(out, "landscape.png"))
    return result


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------
_COLORS = {0: "tab:green", 1: "tab:blue", 2: "tab:red"}
_LABELS = {0: "order 0 (fit u)", 1: "order 1 (flux form)", 2: "order 2 (PINN)"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_sensitivity(result: dict[str, Any], path: str) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, xlabel in (
        (axes[0], "weight_perturbation", "weight perturbation ||delta|| / ||W|| per tensor"),
        (axes[1], "output_perturbation", "output perturbation eps (y + eps (smooth + rough))"),
    ):
        for order in ORDERS:
            d = result["orders"][str(order)][key]
            x = np.asarray(d["magnitudes"])
            med, lo, hi = (np.asarray(d[k]) for k in ("median", "q25", "q75"))
            ax.errorbar(
                x,
                med,
                yerr=[med - lo, hi - med],
                marker="o",
                capsize=3,
                color=_COLORS[order],
                label=_LABELS[order],
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("||g(perturbed) - g|| / ||g||  (median, quartiles)")
    axes[0].legend()
    fig.suptitle(
        f"{result['problem']}: gradient sensitivity at {result['at']} "
        f"(seed {result['seed']}, K = {result['samples']})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_histograms(
    result: dict[str, Any],
    grads: dict[int, Tensor],
    masks: dict[int, Tensor],
    slices: list[tuple[str, int, int]],
    path: str,
) -> None:
    plt = _plt()
    n = len(slices)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2), squeeze=False)
    for ax, (lname, a, b), li in zip(axes[0], slices, range(n), strict=True):
        for order in ORDERS:
            g = grads[order][a:b][masks[order][a:b]].double().cpu().numpy()
            sd = g.std()
            z = g / sd if sd > 0 else g
            st = result["orders"][str(order)]["layers"][li]
            ax.hist(
                z,
                bins=60,
                range=(-8, 8),
                density=True,
                histtype="step",
                color=_COLORS[order],
                label=f"{order}: kurt {st['excess_kurtosis']:.1f}, "
                f"cos {st['cosine_two_draws']:.2f}",
            )
        ax.set_yscale("log")
        ax.set_title(lname, fontsize=9)
        ax.set_xlabel("gradient entry / layer std")
        ax.legend(fontsize=6, title="order", title_fontsize=6, loc="upper right")
    fig.suptitle(
        f"{result['problem']}: per-layer gradient entries at {result['at']} "
        "(excess kurtosis; cosine between two point draws)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_landscapes(panels: list[dict[str, Any]], path: str) -> None:
    plt = _plt()
    n = len(panels)
    fig = plt.figure(figsize=(5.0 * n, 8.4))
    for k, res in enumerate(panels):
        a = np.asarray(res["alpha"])
        b = np.asarray(res["beta"])
        aa, bb = np.meshgrid(a, b, indexing="ij")
        vals = np.asarray(res["loss"], dtype=float)
        z = np.log10(vals + res["log_shift"])
        label = "log10 L" if not res["log_shift"] else f"log10(L + {res['log_shift']:.3g})"
        title = f"{res['problem']} / {res['formulation']}"
        ax = fig.add_subplot(2, n, k + 1, projection="3d")
        ax.plot_surface(aa, bb, z, cmap="viridis", linewidth=0, antialiased=False)
        ax.set_xlabel("alpha")
        ax.set_ylabel("beta")
        ax.set_zlabel(label)
        ax.set_title(f"{title}\nL(0) = {res['origin_loss']:.3g}", fontsize=10)
        ax2 = fig.add_subplot(2, n, n + k + 1)
        cs = ax2.contourf(aa, bb, z, levels=30, cmap="viridis")
        ax2.contour(aa, bb, z, levels=15, colors="k", linewidths=0.3)
        ax2.plot([0], [0], "r+", ms=10)
        fig.colorbar(cs, ax=ax2, label=label)
        ax2.set_xlabel("alpha")
        ax2.set_ylabel("beta")
        ax2.set_aspect("equal")
        ax2.set_title(
            f"{title}: {res['local_minima']} local minima, roughness {res['roughness']:.2g}",
            fontsize=9,
        )
    fig.suptitle("loss landscape (filter-normalised random directions, multipliers frozen)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
