"""A problem described as data: ``fluxkern.problem(...)`` builds a Problem without subclassing."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fluxkern.blocks import Block
from fluxkern.geometry import Box, Domain, Interval
from fluxkern.geometry import grid as uniform_grid
from fluxkern.problems.base import (
    EvalGrid,
    Problem,
    ProblemTypeError,
    call_user,
    relative_l2,
)
from fluxkern.problems.points import Points, PointSpec, Sample, draw_points

__all__ = ["METHOD_DEFAULTS", "DeclaredProblem", "method_defaults", "problem", "reference_run"]

# The method's settings of PROBLEMS.md (L-BFGS, float64, rmsprop dual rule with eta 1, eps 1e-8)
# that the benchmark problems share; a problem's defaults extend or override them.
METHOD_DEFAULTS: Mapping[str, Any] = {
    "optimizer": "lbfgs",
    "dtype": "float64",
    "dual": "rmsprop",
    "dual_options": {"eta": 1.0, "eps": 1e-8},
}


def method_defaults(
    epochs: int, eta: float = 1.0, eps: float = 1e-8, **points: Any
) -> dict[str, Any]:
    """A benchmark problem's defaults: METHOD_DEFAULTS with its epochs, dual rule step and eps.

    Args:
        epochs: Outer epochs of a default run.
        eta: The rmsprop dual rule's step.
        eps: The rmsprop dual rule's eps.
        **points: Point counts (n_interior=..., ...) and any other solver option.

    Returns:
        A new dict (solver options; see fluxkern.solver.SolveOptions).
    """
    out = {**METHOD_DEFAULTS, "epochs": epochs, "dual_options": {"eta": eta, "eps": eps}}
    out.update(points)
    return out


def reference_run(
    errors: Mapping[str, float], epochs: int | None, note: str, wall_time_s: float | None = None
) -> dict[str, Any]:
    """What the method's reference code reported for a problem (Problem.reference).

    Args:
        errors: Relative L2 error per field (empty where it reported none).
        epochs: Its epoch count, or None.
        note: Where the numbers come from.
        wall_time_s: Its wall time in seconds, or None when not given.

    Returns:
        {"errors", "wall_time_s", "epochs", "note"}.
    """
    return {"errors": dict(errors), "wall_time_s": wall_time_s, "epochs": epochs, "note": note}


Terms = Callable[[Points], Sequence[Block]] | Sequence[Block]
ExtraResults = Callable[
    [Callable[[Tensor], dict[str, Tensor]], torch.dtype, torch.device], Mapping[str, Any]
]
GridSpec = int | Sequence[int] | EvalGrid | Tensor | Callable[[torch.dtype, torch.device], EvalGrid]
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _names(value: str | Sequence[str], what: str) -> tuple[str, ...]:
    parts = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    if not all(isinstance(p, str) and p.isidentifier() for p in parts):
        raise ValueError(f"{what} must be identifiers, e.g. 'x y', got {value!r}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"duplicate {what} in {value!r}")
    return tuple(parts)


def _box_of(tensors: list[Tensor], d: int) -> Domain:
    """The bounding box of explicit point sets (the network's input standardisation)."""
    pts = torch.cat([t.detach().to("cpu", torch.float64).reshape(-1, d) for t in tensors])
    lo, hi = pts.min(0).values, pts.max(0).values
    if pts.shape[0] == 0 or bool((hi <= lo).any()):
        raise ValueError("the point sets span no box (a coordinate is constant); give domain=")
    return Interval(float(lo[0]), float(hi[0])) if d == 1 else Box(lo.tolist(), hi.tolist())


def _resolve_domain(domain: Any, points: Mapping[str, PointSpec], terms: Terms, d: int) -> Domain:
    if isinstance(domain, Domain):
        dom = domain
    elif isinstance(domain, tuple) and len(domain) == 2:
        lo, hi = domain
        num = isinstance(lo, (int, float))
        dom = Interval(float(lo), float(hi)) if num else Box(list(lo), list(hi))
    elif domain is None:
        tensors = [t for spec in points.values() for t in _tensors(spec)]
        if not callable(terms):
            tensors += [b.points for b in terms]
        if any(isinstance(s, Sample) or callable(s) for s in points.values()) or not tensors:
            raise ValueError(
                "give domain= (a fluxkern.geometry domain or (lo, hi)): sampled or computed point "
                "sets need it, and its bounding box standardises the network's inputs"
            )
        dom = _box_of(tensors, d)
    else:
        raise TypeError(f"domain must be a fluxkern.geometry domain or (lo, hi), got {domain!r}")
    if dom.dim != d:
        raise ValueError(f"the domain has {dom.dim} coordinates but there are {d} inputs")
    return dom


def _tensors(spec: Any) -> list[Tensor]:
    if isinstance(spec, Tensor):
        return [spec]
    if isinstance(spec, tuple):
        return [t for t in spec if isinstance(t, Tensor)]
    return []


class DeclaredProblem(Problem):
    """A problem given as data (``fluxkern.problem`` is this class).

    Args:
        name: The problem's name: results.json's "problem", the default output folder
            runs/NAME-FORMULATION and the name a checkpoint must carry to be resumed.
        inputs: Input names in column order, "x t" or ("x", "t").
        outputs: Network outputs of the flux form, "u q".
        terms: The flux form's Objective and Constraint blocks: a function of the point sets
            (a :class:`Points` mapping, built anew for every run with its seed, dtype and
            device) returning the blocks, or the blocks themselves (fixed points).
        domain: A fluxkern.geometry domain or a (lo, hi) box. Its bounding box standardises the
            network's inputs; :class:`Sample` point sets draw from it. Optional when every point
            set is a tensor (the points' bounding box is used).
        points: Point sets by name: ``Sample("interior", 1000)``, a [N, d] tensor (a pair of
            them for paired blocks), or a function ``(seed, dtype, device) -> points``. The k-th
            set is drawn with the run's seed + k.
        exact: ``exact(x [N, d]) -> {field: [N]}``: exact values for the error report (with
            `parameters`, called as ``exact(x, **parameters)``).
        eval_grid: Where errors, prediction.npz and the plots are evaluated: points per axis
            (int or tuple; a uniform grid over the domain's bounding box, default 101 per axis
            in 1-D and 2-D, 21 above), an EvalGrid, a [G, d] tensor, or
            ``(dtype, device) -> EvalGrid``.
        error_fields: Fields whose relative L2 error is reported (default: every output that
            ``exact`` returns; ``()`` for a problem without an exact solution).
        summary: One line describing the problem.
        width, depth, activation: The network (hidden width, hidden layers, "tanh" | "silu" |
            "sin").
        defaults: Solver options of a default run (epochs, optimizer, dual, dual_options, ...)
            and the problem's own options (e.g. point counts named by Sample).
        reference: Reference numbers copied into results.json.
        pinn_outputs: Outputs of a second-order PINN form, with `pinn_loss`.
        pinn_loss: ``pinn_loss(model, points) -> closure`` returning the PINN loss.
        parameters: Constants of the equations by name, e.g. ``{"beta": 40.0}``. Each is an
            attribute of the problem that may be changed before a run (``p.beta = 1.0``);
            `terms` and `pinn_loss` read the current values from ``points.params`` and `exact`
            gets them as keyword arguments.
        extra_results: ``extra_results(predict, dtype, device) -> dict``: problem-specific
            results (e.g. a comparison with published data) merged into results.json.
            ``predict(x [N, d]) -> {field: [N]}`` evaluates the trained network; dtype and
            device are those of the latest eval_grid call (the run's; float64 CPU before one).

    Raises:
        ValueError: Bad names, a domain of the wrong dimension, no domain where one is needed,
            a parameter named like an attribute of the problem, or fixed blocks that
            check_terms refuses (the solver options among `defaults` are checked with the
            caller's when a run is set up: SolveOptions.validate).
        TypeError: `terms` is neither a function nor blocks.

    A run's set-up (flux_terms, pinn_loss) checks the rest before training: the terms'
    symbols against `inputs` and `outputs`, terms without points, and `exact` and `eval_grid`
    evaluated once on the grid (Problem.check_terms and check_evaluation); what `terms`,
    `exact`, `eval_grid`, `pinn_loss` or a point-set function raises becomes one line naming
    the problem (a ProblemError, a ValueError).
    """

    def __init__(
        self,
        name: str,
        inputs: str | Sequence[str],
        outputs: str | Sequence[str],
        terms: Terms,
        *,
        domain: Domain | tuple[Any, Any] | None = None,
        points: Mapping[str, PointSpec] | None = None,
        exact: Callable[..., Mapping[str, Tensor]] | None = None,
        eval_grid: GridSpec | None = None,
        error_fields: str | Sequence[str] | None = None,
        summary: str = "",
        width: int = 20,
        depth: int = 4,
        activation: str = "tanh",
        defaults: Mapping[str, Any] | None = None,
        reference: Mapping[str, Any] | None = None,
        pinn_outputs: str | Sequence[str] = (),
        pinn_loss: Callable[[nn.Module, Points], Callable[[], Tensor]] | None = None,
        parameters: Mapping[str, Any] | None = None,
        extra_results: ExtraResults | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"name must be letters, digits, '_', '.' or '-', got {name!r}")
        if not callable(terms) and not (
            isinstance(terms, Sequence) and all(isinstance(b, Block) for b in terms)
        ):
            raise TypeError("terms must be a function of the points or a list of blocks")
        self.name, self.summary = name, summary
        self.input_names = _names(inputs, "input names")
        self.output_names = _names(outputs, "output names")
        self.pinn_output_names = _names(pinn_outputs, "PINN output names") if pinn_outputs else ()
        if bool(self.pinn_output_names) != (pinn_loss is not None):
            raise ValueError("give pinn_outputs and pinn_loss together (or neither)")
        self.width, self.depth, self.activation = width, depth, activation
        self.defaults = copy.deepcopy(dict(defaults or {}))
        self.reference = copy.deepcopy(dict(reference or {}))
        self._points = dict(points or {})
        self._terms, self._exact, self._pinn_loss, self._grid = terms, exact, pinn_loss, eval_grid
        self._extra = extra_results
        self._grid_opts: tuple[torch.dtype, torch.device] = (torch.float64, torch.device("cpu"))
        d = len(self.input_names)
        self._domain = _resolve_domain(domain, self._points, terms, d)
        self._errors_given = error_fields is not None
        fields = self.output_names + tuple(
            n for n in self.pinn_output_names if n not in self.output_names
        )
        self.error_fields = (
            _names(error_fields, "error fields") if error_fields is not None else fields
        )
        unknown = set(self.error_fields) - set(fields)
        if unknown:
            raise ValueError(f"error fields {sorted(unknown)} are not outputs of the network")
        if error_fields is not None and self.error_fields and exact is None:
            raise ValueError("error_fields need exact= (the values to compare with)")
        self._param_names: tuple[str, ...] = ()
        self._set_parameters(parameters or {})
        self._checked: set[tuple[Any, ...]] = set()  # (dtype, device, params) checked
        if not callable(terms):
            self.check_terms(list(terms))

    def _set_parameters(self, parameters: Mapping[str, Any]) -> None:
        """Makes each parameter an instance attribute (checked not to hide one of the class)."""
        keys = _names(list(parameters), "parameter names")
        for key in keys:
            if hasattr(self, key):
                raise ValueError(f"parameter {key!r} would hide the problem's attribute {key!r}")
            setattr(self, key, parameters[key])
        self._param_names = keys

    @property
    def params(self) -> dict[str, Any]:
        """The parameters' current values by name (empty when the problem declares none)."""
        return {k: getattr(self, k) for k in self._param_names}

    def __repr__(self) -> str:
        return f"fluxkern.problem({self.name!r})"

    @property
    def point_sets(self) -> dict[str, str]:
        """The point sets by name, each with how it is given (``Sample('interior', 1024)``, a
        tensor, or a function)."""
        return {
            name: spec.describe(self.defaults) if isinstance(spec, Sample) else type(spec).__name__
            for name, spec in self._points.items()
        }

    def set_point_count(self, name: str, n: int) -> None:
        """Draws `n` points for the point set `name` from now on (a Sample set only).

        Raises:
            ValueError: No such set, or a set given as points or a function (its count is
                what it holds).
        """
        spec = self._points.get(name)
        if spec is None:
            raise ValueError(f"{self.name} has no point set {name!r}")
        if not isinstance(spec, Sample):
            raise ValueError(
                f"{self.name}: point set {name!r} is given as points, not drawn; its count is "
                "what it holds"
            )
        self._points[name] = Sample(spec.where, n, spec.method, spec.axis)

    @property
    def domain(self) -> Domain:
        return self._domain

    def points(self, seed: int, dtype: torch.dtype, device: torch.device) -> Points:
        """The point sets of a run with this seed, dtype and device."""
        return draw_points(
            self._points,
            self._domain,
            self.defaults,
            seed,
            dtype,
            device,
            self.params,
            problem=self.name,
        )

    def flux_terms(self, seed: int, dtype: torch.dtype, device: torch.device) -> list[Block]:
        """The flux form's blocks of a run, checked (see the class doc); the first call for a
        dtype, device and parameters also checks exact() and the evaluation grid.

        Raises:
            ProblemError: A point set, terms(), a term, exact() or the grid is wrong (one line).
        """
        if not callable(self._terms):
            blocks = list(self._terms)
            self.check_terms(blocks)
        else:
            pts = self.points(seed, dtype, device)
            blocks = call_user(self.name, "terms()", self._terms, pts)
            if not isinstance(blocks, Sequence) or not all(isinstance(b, Block) for b in blocks):
                raise ProblemTypeError(
                    f"problem {self.name!r}: terms() must return a list of fluxkern.Objective "
                    f"and fluxkern.Constraint blocks, got {type(blocks).__name__}"
                )
            blocks = list(blocks)
            self.check_terms(blocks, lambda b: self._empty_set(b, pts))
        self._check_once(dtype, device)
        return blocks

    def _empty_set(self, block: Block, pts: Points) -> str | None:
        """Which declared point set an empty block's points are, said in words: the set itself,
        else an empty set it may come from; None when no declared set is empty."""
        empty = [k for k, v in pts.items() if (v[0] if isinstance(v, tuple) else v).shape[0] == 0]
        same = [k for k in empty if not block.paired and pts[k] is block.points]
        for name in same or empty[:1]:
            spec = self._points[name]
            how = spec.describe(self.defaults) if isinstance(spec, Sample) else "given empty"
            return f"point set {name!r} is empty: {how}"
        return None

    def _check_once(self, dtype: torch.dtype, device: torch.device) -> None:
        """check_evaluation, once per dtype, device and parameter values."""
        key = (dtype, str(torch.device(device)), repr(self.params))
        if key not in self._checked:
            self.check_evaluation(dtype, device)
            self._checked.add(key)

    def pinn_loss(
        self, model: nn.Module, seed: int, dtype: torch.dtype, device: torch.device
    ) -> Callable[[], Tensor]:
        if self._pinn_loss is None:
            return super().pinn_loss(model, seed, dtype, device)
        pts = self.points(seed, dtype, device)
        loss = call_user(self.name, "pinn_loss()", self._pinn_loss, model, pts)
        self._check_once(dtype, device)
        return loss

    def exact(self, x: Tensor) -> dict[str, Tensor]:
        if self._exact is None:
            return {}
        values = call_user(self.name, "exact()", self._exact, x, **self.params)
        if not isinstance(values, Mapping):
            raise ProblemTypeError(
                f"problem {self.name!r}: exact() must return a dict {{field: tensor [N]}}, "
                f"got {type(values).__name__}"
            )
        return {k: _flat(v) for k, v in values.items()}

    def required_exact_fields(self) -> tuple[str, ...]:
        """The error fields when they were given; else none (exact may give some outputs)."""
        return tuple(self.error_fields) if self._errors_given else ()

    def errors(self, fields: dict[str, Tensor], grid: EvalGrid) -> dict[str, float]:
        exact = self.exact(grid.points)
        out = {}
        for k in self.error_fields:
            if k not in fields:
                continue
            if k not in exact:
                if self._errors_given:
                    raise ValueError(f"problem {self.name!r}: exact() gives no {k!r}")
                continue
            out[k] = relative_l2(fields[k], exact[k])
        return out

    def extra_results(self, predict: Callable[[Tensor], dict[str, Tensor]]) -> dict[str, Any]:
        if self._extra is None:
            return {}
        return dict(self._extra(predict, *self._grid_opts))

    def eval_grid(self, dtype: torch.dtype, device: torch.device) -> EvalGrid:
        # extra_results only gets a predict callable: remember the run's dtype and device (the
        # solver calls eval_grid before extra_results)
        self._grid_opts = (dtype, torch.device(device))
        spec, d = self._grid, len(self.input_names)
        if spec is None:
            spec = (101,) * d if d <= 2 else (21,) * d
        if isinstance(spec, EvalGrid):
            grid = self.check_grid(spec)
            return EvalGrid(grid.points.to(dtype=dtype, device=device), tuple(grid.shape))
        if isinstance(spec, Tensor):
            grid = self.check_grid(EvalGrid(spec, (spec.shape[0] if spec.dim() else 0,)))
            return EvalGrid(grid.points.to(dtype=dtype, device=device), grid.shape)
        if callable(spec):
            return self.check_grid(call_user(self.name, "eval_grid()", spec, dtype, device))
        shape = (spec,) * d if isinstance(spec, int) else tuple(spec)
        return EvalGrid(uniform_grid(self._domain, shape, dtype=dtype, device=device), shape)


def _flat(v: Any) -> Any:
    """A [N, 1] tensor as [N]; anything else as it is (check_evaluation says what is wrong)."""
    return v.reshape(-1) if isinstance(v, Tensor) and v.dim() == 2 and v.shape[1] == 1 else v


problem = DeclaredProblem
