"""The benchmark problems of PROBLEMS.md, each in flux form with its PINN baseline, and the
tools to declare and load a user's own problem (fluxkern.problem, Sample, resolve).

The built-in problems' modules (fluxkern.problems.poisson, ...) are imported when a problem is
first asked for by name (get, resolve) or when the module is named (``from fluxkern.problems
import cavity``, ``fluxkern.problems.cavity``), not when fluxkern is imported.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from fluxkern.problems.base import EvalGrid, Problem, relative_l2
from fluxkern.problems.declared import DeclaredProblem, problem
from fluxkern.problems.loader import ProblemLoadError, resolve
from fluxkern.problems.points import Points, Sample
from fluxkern.problems.registry import BUILTIN, get, names, register

__all__ = [
    "DeclaredProblem",
    "EvalGrid",
    "Points",
    "Problem",
    "ProblemLoadError",
    "Sample",
    "get",
    "names",
    "problem",
    "register",
    "relative_l2",
    "resolve",
]


def __getattr__(name: str) -> ModuleType:
    """fluxkern.problems.<built-in name>: the problem's module, imported on first use."""
    if name in BUILTIN:
        return importlib.import_module(BUILTIN[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
