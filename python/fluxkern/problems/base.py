"""What a benchmark problem provides to the solver."""

from __future__ import annotations

import abc
import copy
import math
import os
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from fluxkern.blocks import Block
from fluxkern.expr import Symbol
from fluxkern.geometry import Domain

__all__ = [
    "EvalGrid",
    "Problem",
    "ProblemError",
    "ProblemKeyError",
    "ProblemTypeError",
    "problem_error",
    "raised",
    "relative_l2",
]


class ProblemError(ValueError):
    """A problem that would train on the wrong thing or fail late: its terms, point sets, exact
    solution or evaluation grid (one line, naming the problem; the CLI's exit code 2)."""


class ProblemTypeError(ProblemError, TypeError):
    """A ProblemError about a value of the wrong type (also a TypeError)."""


class ProblemKeyError(ProblemError, KeyError):
    """A ProblemError about a name that is not there, e.g. a point set (also a KeyError)."""

    def __str__(self) -> str:  # the message itself, not KeyError's repr of it
        return str(self.args[0]) if self.args else ""


def problem_error(message: str, like: BaseException | None = None) -> ProblemError:
    """A ProblemError, or a ProblemTypeError / ProblemKeyError where `like` is a TypeError /
    KeyError (so that code catching the original kind still catches it)."""
    if isinstance(like, TypeError):
        return ProblemTypeError(message)
    if isinstance(like, KeyError):
        return ProblemKeyError(message)
    return ProblemError(message)


# Frames in these folders are fluxkern's or torch's, not the user code that raised.
_OWN_FOLDERS = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
    os.path.dirname(os.path.abspath(torch.__file__)) + os.sep,
)


def raised(what: str, exc: BaseException) -> str:
    """One line about an exception from a user's function: "WHAT raised TYPE: MESSAGE (FILE,
    line N)", with the innermost line of the user's own code (not fluxkern's or torch's)."""
    msg = " ".join(str(exc).split()) or "(no message)"
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if not os.path.abspath(f.filename).startswith(_OWN_FOLDERS)]
    where = f" ({os.path.basename(mine[-1].filename)}, line {mine[-1].lineno})" if mine else ""
    return f"{what} raised {type(exc).__name__}: {msg}{where}"


def call_user(problem: str, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """fn(*args, **kw), a function of the user's problem; what it raises becomes one line.

    Raises:
        ProblemError: "problem NAME: WHAT raised TYPE: MESSAGE (FILE, line N)", chained to the
            original exception (a ProblemError it raises passes unchanged).
    """
    try:
        return fn(*args, **kw)
    except ProblemError:
        raise
    except Exception as exc:
        head = f"problem {problem!r}: " if problem else ""
        raise problem_error(head + raised(what, exc), exc) from exc


@dataclass
class EvalGrid:
    """Evaluation points and how to reshape them.

    Attributes:
        points: [G, d] points.
        shape: Grid shape, prod(shape) == G (meshgrid "ij" order over the inputs).
    """

    points: Tensor
    shape: tuple[int, ...]


def relative_l2(pred: Tensor, exact: Tensor) -> float:
    """||pred - exact||_2 / ||exact||_2 (float64)."""
    pred, exact = pred.detach().double().cpu(), exact.detach().double().cpu()
    return float((pred - exact).norm() / exact.norm())


class Problem(abc.ABC):
    """A PDE problem in flux (first-order) form, with its PINN (second-order) baseline.

    Subclasses set the class attributes and implement the methods; the built-in problems are
    declarations instead (fluxkern.problem, a subclass that takes all of them as arguments).
    Every residual is written with the public expression API (fluxkern.inputs / outputs / data,
    Objective, Constraint).

    Attributes:
        name: Registry name.
        summary: One line for `fluxkern list`.
        input_names: Input columns, e.g. ("x", "t").
        output_names: Flux-form network outputs, e.g. ("u", "sigma").
        pinn_output_names: Outputs of the PINN form's network, or () when there is none.
        error_fields: Output fields whose relative L2 error is reported.
        width, depth, activation: The network (PROBLEMS.md).
        defaults: Solver options of a default run (see fluxkern.solver.SolveOptions) and the
            problem's own options (point counts, ...). Every instance gets its own deep copy of
            the class's dict, so changing one instance's defaults never changes another's.
        reference: The method's reference code: {"errors": {field: rel L2}, "wall_time_s": s or
            None, "epochs": n, "note": str} (copied per instance like defaults).
    """

    name: str = ""
    summary: str = ""
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    pinn_output_names: tuple[str, ...] = ()
    error_fields: tuple[str, ...] = ()
    width: int = 20
    depth: int = 4
    activation: str = "tanh"
    defaults: Mapping[str, Any] = MappingProxyType({})  # read-only: subclasses set their own
    reference: Mapping[str, Any] = MappingProxyType({})

    def __init__(self) -> None:
        self.defaults = copy.deepcopy(dict(type(self).defaults))
        self.reference = copy.deepcopy(dict(type(self).reference))

    @property
    @abc.abstractmethod
    def domain(self) -> Domain:
        """The domain; its bounding box gives the input standardisation."""

    @abc.abstractmethod
    def flux_terms(self, seed: int, dtype: torch.dtype, device: torch.device) -> list[Block]:
        """Objective and Constraint blocks of the flux form, with their points."""

    def pinn_loss(
        self, model: nn.Module, seed: int, dtype: torch.dtype, device: torch.device
    ) -> Callable[[], Tensor]:
        """A closure returning the PINN loss (plain penalties, second derivatives by autograd)."""
        raise NotImplementedError(f"{self.name} has no PINN form")

    @abc.abstractmethod
    def exact(self, x: Tensor) -> dict[str, Tensor]:
        """Exact (or reference) values of the error fields at points x [N, d], each [N]."""

    @abc.abstractmethod
    def eval_grid(self, dtype: torch.dtype, device: torch.device) -> EvalGrid:
        """The evaluation grid of PROBLEMS.md."""

    # ------------------------------------------------------------------ checks of a run's set-up
    def check_terms(
        self, blocks: Sequence[Block], where: Callable[[Block], str | None] | None = None
    ) -> None:
        """Checks a run's flux terms against the problem before training.

        Args:
            blocks: The blocks of flux_terms.
            where: Says what an empty block's points are (e.g. "point set 'p' is empty"), or
                None where it cannot tell.

        Raises:
            ProblemError: A term uses an input or output symbol that the problem does not
                declare, or declares at another place (its column would be another name's),
                or a term has no points (it would drop out of the loss silently).
        """
        for b in blocks:
            for e in b.exprs:
                for sym in e.symbols().values():
                    if sym.kind in ("input", "output"):
                        self._check_symbol(b.name, sym)
            if b.n == 0:
                what = where(b) if where is not None else None
                shape = [0, b.points.shape[1]]
                what = what or f"its points are an empty {shape} tensor: a selection matching none?"
                raise ProblemError(
                    f"problem {self.name!r}: term {b.name!r} has no points ({what}); give it at "
                    "least one point"
                )

    def _check_symbol(self, term: str, sym: Symbol) -> None:
        """One input or output symbol of a term against the declared names."""
        declared = self.output_names if sym.kind == "output" else self.input_names
        names, made = " ".join(declared), f"fluxkern.{sym.kind}s({' '.join(sym.group)!r})"
        head = f"problem {self.name!r}: term {term!r} uses {sym.kind} {sym.name!r}"
        if sym.name not in declared:
            raise ProblemError(
                f"{head}, which the problem does not declare ({sym.kind}s {names!r}); declare it "
                f"in {sym.kind}s= or build the term from the declared {sym.kind}s"
            )
        at = declared.index(sym.name)
        if at != sym.index:
            raise ProblemError(
                f"{head} as {sym.kind} {sym.index} of {made}, but the problem declares "
                f"{sym.kind}s {names!r} ({sym.name} is {sym.kind} {at}); give {sym.kind}s= and "
                f"fluxkern.{sym.kind}s(...) the same names in the same order"
            )

    def check_grid(self, grid: Any) -> EvalGrid:
        """`grid` checked as the problem's evaluation grid (what eval_grid returns).

        Raises:
            ProblemError: Not an EvalGrid, points that are not [G, d], or a shape that does not
                hold G points.
        """
        if not isinstance(grid, EvalGrid):
            raise ProblemTypeError(
                f"problem {self.name!r}: eval_grid() must return an EvalGrid, got "
                f"{type(grid).__name__} (an EvalGrid holds the points [G, d] and the grid shape)"
            )
        d, pts = len(self.input_names), grid.points
        if not isinstance(pts, Tensor) or pts.dim() != 2 or pts.shape[1] != d:
            got = list(pts.shape) if isinstance(pts, Tensor) else type(pts).__name__
            raise ProblemError(
                f"problem {self.name!r}: the evaluation grid's points must be a [G, {d}] tensor, "
                f"got {got}"
            )
        shape = tuple(grid.shape)
        if not all(isinstance(n, int) for n in shape) or math.prod(shape) != pts.shape[0]:
            raise ProblemError(
                f"problem {self.name!r}: the evaluation grid's shape {shape} holds "
                f"{math.prod(shape) if all(isinstance(n, int) for n in shape) else '?'} points, "
                f"not the {pts.shape[0]} given"
            )
        return grid

    def required_exact_fields(self) -> tuple[str, ...]:
        """The fields that exact() must give (every error field)."""
        return tuple(self.error_fields)

    def check_evaluation(self, dtype: torch.dtype, device: torch.device) -> None:
        """Evaluates eval_grid and exact() once, as the end of a run will, and checks them.

        Called when a run is set up (before training), so that a wrong grid or exact solution
        is refused there instead of after the training.

        Raises:
            ProblemError: A grid that check_grid refuses; exact() raising, not returning a dict,
                a field that is not an output, a value that is not a tensor of one value per
                grid point, or a required field missing.
        """
        grid = self.check_grid(call_user(self.name, "eval_grid()", self.eval_grid, dtype, device))
        exact = call_user(self.name, "exact()", self.exact, grid.points)
        if not isinstance(exact, Mapping):
            raise ProblemTypeError(
                f"problem {self.name!r}: exact() must return a dict {{field: tensor [N]}}, "
                f"got {type(exact).__name__}"
            )
        fields = tuple(dict.fromkeys(self.output_names + self.pinn_output_names))
        g = grid.points.shape[0]
        for k, v in exact.items():
            if k not in fields:
                raise ProblemError(
                    f"problem {self.name!r}: exact() gives {k!r}, which is not an output "
                    f"(outputs: {', '.join(fields)}); name its fields after the outputs"
                )
            if not isinstance(v, Tensor):
                raise ProblemTypeError(
                    f"problem {self.name!r}: exact()[{k!r}] is a {type(v).__name__}, not a tensor"
                )
            if tuple(v.shape) != (g,):
                raise ProblemError(
                    f"problem {self.name!r}: exact()[{k!r}] has shape {list(v.shape)}, expected "
                    f"[{g}] (one value per point of x [{g}, {len(self.input_names)}])"
                )
        missing = [k for k in self.required_exact_fields() if k not in exact]
        if missing:
            raise ProblemError(
                f"problem {self.name!r}: exact() gives no {missing[0]!r} (an error field)"
            )

    def errors(self, fields: dict[str, Tensor], grid: EvalGrid) -> dict[str, float]:
        """Relative L2 errors of the error fields on the grid."""
        exact = self.exact(grid.points)
        return {k: relative_l2(fields[k], exact[k]) for k in self.error_fields if k in fields}

    def extra_results(self, predict: Callable[[Tensor], dict[str, Tensor]]) -> dict[str, Any]:
        """Problem-specific results (e.g. centreline comparisons); empty by default."""
        return {}

    def has_pinn(self) -> bool:
        return bool(self.pinn_output_names)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "inputs": list(self.input_names),
            "outputs": list(self.output_names),
            "net": [len(self.input_names), self.width, self.depth, len(self.output_names)],
            "defaults": dict(self.defaults),
            "reference": dict(self.reference),
        }
