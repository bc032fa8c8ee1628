"""Point sets of a declared problem: seeded samples of its domain, tensors, or functions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fluxkern.geometry import Box, Domain, TimeProduct, grid, periodic_pairs
from fluxkern.problems.base import ProblemError, ProblemKeyError, call_user, problem_error

__all__ = ["PointSet", "PointSpec", "Points", "Sample", "draw_points"]

PointSet = Tensor | tuple[Tensor, Tensor]  # [N, d] points, or a pair for paired blocks


@dataclass(frozen=True)
class Sample:
    """Seeded points of the problem's domain, drawn when a run starts.

    Attributes:
        where: "interior", "boundary" (spread over all faces), "initial" (t = t0 of a
            TimeProduct domain), the name of one face of the domain ("left", "top", "x0+", ...),
            or "pairs": matched points on the two opposite faces along `axis` (a pair of sets,
            for a periodic condition; see fluxkern.geometry.periodic_pairs).
        n: The number of points (of pairs), or the name of a key of the problem's defaults that
            holds it (so a run can change it: ``Sample("interior", "n_interior")``).
        method: "sobol" (scrambled Sobol, the default), "uniform", or "grid": evenly spaced
            points on faces, the boundary and pairs, and for "interior" of a box domain the
            uniform grid over the box with both ends of every axis (n must be a perfect d-th
            power; the seed is not used).
        axis: The axis of "pairs" (an input column); None for every other `where`.
    """

    where: str
    n: int | str
    method: str = "sobol"
    axis: int | None = None

    def __post_init__(self) -> None:
        if (self.where == "pairs") != (self.axis is not None):
            raise ValueError("Sample: give axis= with where='pairs' (and only there)")

    def count(self, options: Mapping[str, Any]) -> int:
        """The number of points, looked up in `options` when `n` names a key.

        Raises:
            ValueError: `n` names no key of `options`, or the count is not an integer >= 0.
        """
        if not isinstance(self.n, str):
            n, what = self.n, "n"
        elif self.n not in options:
            raise ValueError(f"Sample({self.where!r}, {self.n!r}): the defaults have no {self.n!r}")
        else:
            n, what = options[self.n], f"defaults[{self.n!r}]"
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(
                f"Sample({self.where!r}, {self.n!r}): {what} must be a non-negative integer, "
                f"got {n!r}"
            )
        return n

    def describe(self, options: Mapping[str, Any]) -> str:
        """How it is written, with the count a key names: "Sample('interior', 'n' = 0)"."""
        n = f"{self.n!r} = {options.get(self.n)!r}" if isinstance(self.n, str) else repr(self.n)
        return f"Sample({self.where!r}, {n})"

    def draw(
        self,
        domain: Domain,
        options: Mapping[str, Any],
        seed: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> PointSet:
        """The points [n, d], or a pair of them for "pairs" (normals are dropped)."""
        n = self.count(options)
        kw: dict[str, Any] = {"method": self.method, "seed": seed, "dtype": dtype, "device": device}
        if self.where == "pairs":
            return periodic_pairs(domain, self.axis, n, **kw)
        if self.where == "interior":
            if self.method == "grid":
                return _interior_grid(domain, n, dtype, device)
            return domain.sample_interior(n, **kw)
        if self.where == "boundary":
            return domain.sample_boundary(n, **kw)[0]
        if self.where == "initial":
            if not isinstance(domain, TimeProduct):
                raise ValueError(
                    f"Sample('initial', ...) needs a TimeProduct domain, got {domain!r}"
                )
            return domain.sample_initial(n, **kw)
        return domain.sample_face(self.where, n, **kw)[0]


def _interior_grid(domain: Domain, n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The uniform grid of n points [n, d] over a box domain, ends included (m^d = n)."""
    box = domain.space if isinstance(domain, TimeProduct) else domain
    if not isinstance(box, Box):
        raise ValueError(
            f"Sample('interior', ..., method='grid') needs a box domain, got {domain!r}"
        )
    d = domain.dim
    m = round(n ** (1.0 / d))
    if m**d != n:
        raise ValueError(
            f"Sample('interior', {n}, method='grid'): n must be a perfect {d}-th power"
        )
    return grid(domain, m, dtype=dtype, device=device)


PointSpec = PointSet | Sample | Callable[[int, torch.dtype, torch.device], PointSet]


class Points(Mapping[str, PointSet]):
    """The point sets of one run by name, with the run's seed, dtype, device and options.

    Attributes:
        problem: The problem's name (for error messages; "" when not known).
        seed: The run's seed.
        dtype: The run's dtype.
        device: The run's device.
        options: The problem's defaults (point counts and other problem options).
        params: The problem's parameters (constants of its equations) by name; empty when it
            declares none.
    """

    def __init__(
        self,
        sets: dict[str, PointSet],
        seed: int,
        dtype: torch.dtype,
        device: torch.device,
        options: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        problem: str = "",
    ) -> None:
        self._sets = sets
        self.problem = problem
        self.seed, self.dtype, self.device, self.options = seed, dtype, device, options
        self.params: Mapping[str, Any] = dict(params or {})

    def __getitem__(self, name: str) -> PointSet:
        try:
            return self._sets[name]
        except KeyError:
            have = ", ".join(repr(k) for k in self._sets) or "none"
            head = f"problem {self.problem!r}: " if self.problem else ""
            raise ProblemKeyError(
                f"{head}no point set {name!r}; the problem declares {have}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._sets)

    def __len__(self) -> int:
        return len(self._sets)


def _check_set(
    value: Any, name: str, d: int, dtype: torch.dtype, device: torch.device, head: str = ""
) -> PointSet:
    """`value` as [N, d] points (or a pair of them) of the run's dtype and device."""
    if isinstance(value, tuple) and len(value) == 2:
        return tuple(_check_set(v, name, d, dtype, device, head) for v in value)  # type: ignore[return-value]
    if not isinstance(value, Tensor) or value.dim() != 2 or value.shape[1] != d:
        got = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ProblemError(
            f"{head}point set {name!r} must be a [N, {d}] tensor (or a pair of them), got {got}"
        )
    return value.to(dtype=dtype, device=device)


def _draw_one(
    spec: PointSpec,
    name: str,
    domain: Domain,
    options: Mapping[str, Any],
    run: tuple[int, torch.dtype, torch.device],
    problem: str,
) -> Any:
    """One point set as its spec gives it (unchecked), its errors one line naming the set."""
    seed, dtype, device = run
    if isinstance(spec, Sample):
        try:
            return spec.draw(domain, options, seed, dtype, device)
        except (ValueError, TypeError) as exc:
            head = f"problem {problem!r}: " if problem else ""
            msg = " ".join(str(exc).split())
            raise problem_error(f"{head}point set {name!r}: {msg}", exc) from exc
    if callable(spec):
        return call_user(problem, f"point set {name!r}", spec, seed, dtype, device)
    return spec


def draw_points(
    specs: Mapping[str, PointSpec],
    domain: Domain,
    options: Mapping[str, Any],
    seed: int,
    dtype: torch.dtype,
    device: torch.device,
    params: Mapping[str, Any] | None = None,
    problem: str = "",
) -> Points:
    """Every point set of a declared problem; the k-th set (in order) is drawn with seed + k.

    Args:
        specs: Point sets by name: Sample, tensors, or callables (seed, dtype, device) -> points.
        domain: The problem's domain (Sample draws from it; every set has domain.dim columns).
        options: The problem's defaults.
        seed: The run's seed.
        dtype: The points' dtype.
        device: The points' device.
        params: The problem's parameters, handed on in Points.params.
        problem: The problem's name, for the error messages.

    Returns:
        The point sets, each [N, d] (or a pair of [N, d] for paired blocks).

    Raises:
        ProblemError: A set that cannot be drawn (a bad count, a face the domain lacks, a
            function that raises) or that is not [N, d]; one line naming the problem and set.
    """
    head = f"problem {problem!r}: " if problem else ""
    sets: dict[str, PointSet] = {}
    for k, (name, spec) in enumerate(specs.items()):
        value = _draw_one(spec, name, domain, options, (seed + k, dtype, device), problem)
        sets[name] = _check_set(value, name, domain.dim, dtype, device, head)
    return Points(sets, seed, dtype, device, options, params, problem)
