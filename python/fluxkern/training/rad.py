"""Residual-based adaptive redraws (RAD): new collocation points where the residual is large.

At a redraw the network's residuals are evaluated on a dense candidate set (several draws of
the problem's own points joined together), and the points of the objective's point set are
drawn from the candidates without replacement, with probability

    p(x) ~ eps(x)^k / mean(eps^k) + c

where eps(x) is the norm of every residual of the blocks on that point set at x (the objective
and the constraints that share its points, e.g. a flux definition). k = 1 and c = 1 are the
defaults that Wu et al. (2023, "A comprehensive study of non-adaptive and residual-based
adaptive sampling for physics-informed neural networks") found robust: half of the draw
follows the residual, half stays uniform. The other point sets (boundary, initial, periodic
pairs) are drawn as a plain redraw does. The draw is deterministic given the network: the
candidates come from fixed seeds and the selection from a generator seeded by the draw's seed.

Example:
    >>> blocks, picked = rad_draw(model, lambda s: problem.flux_terms(s, f64, cpu), seed=7)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from fluxkern import ops
from fluxkern.blocks import Block, Objective
from fluxkern.nn import mlp_spec
from fluxkern.training.point_blocks import concat_blocks, same_points, take_rows

__all__ = [
    "RAD_SEED_OFFSET",
    "RadSettings",
    "objective_groups",
    "rad_draw",
    "rad_probabilities",
]

# The candidates of the draw of seed s are the problem's draws of seeds s + RAD_SEED_OFFSET +
# 101 j (j < candidates): far from the training draws (s, s + 1, ...) and from the unseen-point
# check's (seed + 1_000_003 + 101 j).
RAD_SEED_OFFSET = 2_000_003
_STRIDE = 101

Draw = Callable[[int], Sequence[Block]]


@dataclass(frozen=True)
class RadSettings:
    """The numbers of a residual-based draw.

    Attributes:
        k: The exponent of the residual (k = 0: uniform draws).
        c: The uniform part (c = 0: the residual alone decides; large c: nearly uniform).
        candidates: Draws of the point set joined into the candidate set (so candidates times
            the points), >= 2.
    """

    k: float = 1.0
    c: float = 1.0
    candidates: int = 8

    def __post_init__(self) -> None:
        if not (isinstance(self.k, (int, float)) and 0 <= self.k < math.inf):
            raise ValueError(f"RAD k must be a finite number >= 0; got {self.k!r}")
        if not (isinstance(self.c, (int, float)) and 0 <= self.c < math.inf):
            raise ValueError(f"RAD c must be a finite number >= 0; got {self.c!r}")
        n = self.candidates
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ValueError(f"RAD candidates must be an integer >= 2; got {n!r}")


def objective_groups(blocks: Sequence[Block]) -> list[list[str]]:
    """The names of the blocks on each point set that carries an objective: the objective
    and every unpaired block on the same points (in the blocks' order), one list per set."""
    groups: list[list[Block]] = []
    for b in blocks:
        if b.paired:
            continue
        for g in groups:
            if g[0].points is b.points or same_points(g[0].points, b.points):
                g.append(b)
                break
        else:
            groups.append([b])
    return [[b.name for b in g] for g in groups if any(isinstance(b, Objective) for b in g)]


def rad_probabilities(eps: Tensor, k: float, c: float) -> Tensor:
    """eps^k / mean(eps^k) + c, normalised to sum 1 (uniform where that is all zero or not
    finite)."""
    w = eps.double().abs().pow(k)
    mean = w.mean() if w.numel() else w.new_zeros(())
    if not bool(torch.isfinite(mean)) or float(mean) == 0.0:
        w = torch.ones_like(w)
    else:
        w = w / mean + c
    return w / w.sum()


def _residual_norms(model: torch.nn.Module, blocks: Sequence[Block], backend: str | None) -> Tensor:
    """sqrt(sum of every block's squared residuals) per point [N] (the blocks share points)."""
    spec = mlp_spec(model)
    param = next(model.parameters())
    d, m = spec.weights[0].shape[1], spec.weights[-1].shape[0]
    bound = [b.bind(d, m, param.dtype, param.device) for b in blocks]
    with torch.no_grad():
        y, jac = ops.mlp_jet(bound[0].x, spec, backend)
        total = sum(b.residuals_torch(y, jac).square().sum(1) for b in bound)
    return torch.as_tensor(total).sqrt()


def rad_draw(
    model: torch.nn.Module,
    draw: Draw,
    seed: int,
    settings: RadSettings | None = None,
    *,
    scale: int = 1,
    picked: Mapping[str, Tensor] | None = None,
    backend: str | None = None,
) -> tuple[list[Block], dict[str, Tensor]]:
    """The blocks of one residual-based draw.

    Args:
        model: The network whose residuals weigh the candidates.
        draw: The problem's draw: seed -> its blocks (e.g. ``problem.flux_terms(seed, dtype,
            device)``).
        seed: The draw's seed: the plain draw of this seed gives the sizes and the sets that are
            not drawn by residual; the candidates and the selection follow from it.
        settings: k, c and the candidate draws (None: the defaults).
        scale: Points of the result per point of the plain draw (the final phase's denser set:
            the other sets are then `scale` plain draws joined); at most candidates - 1.
        picked: The row numbers a previous call returned (a resumed run): they are used
            instead of drawing, and the model is not evaluated.
        backend: The jet's backend.

    Returns:
        The blocks (in the plain draw's order), and the candidate rows picked for each point
        set drawn by residual, by the name of its first block (CPU int64 tensors).

    Raises:
        ValueError: scale is not below the candidate draws, or `picked` does not fit.
    """
    settings = settings or RadSettings()
    if (
        isinstance(scale, bool)
        or not isinstance(scale, int)
        or not 1 <= scale < settings.candidates
    ):
        raise ValueError(
            f"RAD scale must be an integer in [1, {settings.candidates - 1}]; got {scale!r}"
        )
    base = list(draw(seed))
    groups = objective_groups(base)
    extra = [list(draw(seed + RAD_SEED_OFFSET + _STRIDE * j)) for j in range(settings.candidates)]
    by_name = {b.name: b for b in base}
    out: dict[str, Block] = {}
    chosen: dict[str, Tensor] = {}
    for names in groups:
        cands = [concat_blocks([next(b for b in d if b.name == n) for d in extra]) for n in names]
        want = by_name[names[0]].n * scale
        if picked is not None:
            if names[0] not in picked or picked[names[0]].numel() != want:
                raise ValueError(f"RAD: the saved draw of {names[0]!r} does not fit this run")
            idx = picked[names[0]].to(torch.int64).cpu()
        else:
            p = rad_probabilities(_residual_norms(model, cands, backend), settings.k, settings.c)
            gen = torch.Generator().manual_seed(seed)
            idx = torch.sort(torch.multinomial(p.cpu(), want, generator=gen)).values
        pts = cands[0].points[idx.to(cands[0].points.device)]
        for name, cand in zip(names, cands, strict=True):
            out[name] = take_rows(cand, idx, pts)
        chosen[names[0]] = idx
    for name in (b.name for b in base if b.name not in out):  # plain draws, joined
        parts = [by_name[name]] + [next(b for b in d if b.name == name) for d in extra[: scale - 1]]
        out[name] = concat_blocks(parts)
    return [out[b.name] for b in base], chosen
