"""What a benchmark problem provides to the solver."""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from fluxkern.blocks import Block
from fluxkern.geometry import Domain

__all__ = ["EvalGrid", "Problem", "relative_l2"]


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
