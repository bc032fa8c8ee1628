"""A problem's errors for a trained network, as bench/run_problems.py's trajectories record them.

Relative L2 per error field on the problem's evaluation grid (as fluxkern.solve reports it at
the end of a run); where the method's reference code reported the matrix 2-norm (PROBLEMS.md:
convection and stokes, numpy ``norm(E, 2)`` on the 2-D grid) that error too; for cavity the
largest deviations of u(0.5, y) and v(x, 0.5) from Ghia et al. (the problem's extra_results).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fluxkern import solver
from fluxkern.problems.base import EvalGrid, Problem

__all__ = ["MATRIX_NORM_PROBLEMS", "MATRIX_SUFFIX", "Evaluator", "matrix_relative_error"]

# PROBLEMS.md, "Reference errors, measured again": the reference computed these problems' errors
# with numpy's norm(E, 2) on the 2-D grid array, the matrix 2-norm (largest singular value).
MATRIX_NORM_PROBLEMS = frozenset({"convection", "stokes"})
MATRIX_SUFFIX = " (matrix 2-norm)"


def matrix_relative_error(pred: Tensor, exact: Tensor, shape: tuple[int, ...]) -> float:
    """numpy.linalg.norm(E, 2) / numpy.linalg.norm(Exact, 2) on the grid array (2-D).

    Args:
        pred: Predicted field on the grid, [G].
        exact: Exact field, [G].
        shape: The grid's shape (two entries, prod = G).

    Returns:
        The ratio of the largest singular values, as the reference's notebooks computed it.
    """
    p = pred.detach().double().cpu().numpy().reshape(shape)
    e = exact.detach().double().cpu().numpy().reshape(shape)
    return float(np.linalg.norm(p - e, 2) / np.linalg.norm(e, 2))


def centreline_deviations(extra: dict[str, Any]) -> dict[str, float]:
    """Largest centreline deviations from a problem's extra_results (cavity), else {}."""
    out: dict[str, float] = {}
    val = extra.get("validation")
    if isinstance(val, dict):
        for key, entry in val.items():
            if key.endswith("_centreline") and isinstance(entry, dict):
                if "max_abs_deviation" in entry:
                    field = key[: -len("_centreline")]
                    out[f"{field} centreline max dev"] = float(entry["max_abs_deviation"])
    return out


class Evaluator:
    """The problem's errors for a network, on its evaluation grid (as fluxkern.solve computes
    them at the end of a run), plus the reference's matrix 2-norm or centreline deviations.

    Args:
        problem: The problem instance (cavity remembers the grid's dtype in eval_grid).
        dtype: Grid dtype.
        device: Torch device.
    """

    def __init__(self, problem: Problem, dtype: torch.dtype, device: str = "cpu") -> None:
        self.problem = problem
        self.grid: EvalGrid = problem.eval_grid(dtype, torch.device(device))
        self.exact = problem.exact(self.grid.points)
        self.matrix = problem.name in MATRIX_NORM_PROBLEMS and len(self.grid.shape) == 2

    def __call__(self, model: nn.Module) -> dict[str, float]:
        """Errors by name: each error field's relative L2 (and its matrix 2-norm version where
        the reference used it); cavity: "u centreline max dev", "v centreline max dev"."""
        p = self.problem
        fields = solver.predict(p, model, "flux", self.grid.points)
        errors: dict[str, float] = {}
        for k, v in p.errors(fields, self.grid).items():
            errors[k] = v
            if self.matrix:  # next to the ordinary relative L2
                errors[k + MATRIX_SUFFIX] = matrix_relative_error(
                    fields[k], self.exact[k], self.grid.shape
                )
        extra = p.extra_results(lambda x: solver.predict(p, model, "flux", x))
        errors.update(centreline_deviations(extra))
        return errors
