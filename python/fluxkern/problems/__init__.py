"""The benchmark problems of PROBLEMS.md, each in flux form with its PINN baseline, and the
tools to declare and load a user's own problem (fluxkern.problem, Sample, resolve).

The built-in problems' modules (fluxkern.problems.poisson, ...) are imported when a problem is
first asked for by name (get, resolve) or when the module is named (``from fluxkern.problems
import cavity``, ``fluxkern.problems.cavity``), not when fluxkern is imported.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from fluxkern.problems import loader
from fluxkern.problems.base import EvalGrid, Problem, relative_l2
from fluxkern.problems.declared import DeclaredProblem, problem
from fluxkern.problems.loader import ProblemLoadError
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


def resolve(spec: str) -> Problem:
    """The problem that `spec` names: a registered name (through this module's get and names,
    which callers and tests may replace), a problem file FILE.py[:ATTR] or MODULE:ATTR
    (:func:`fluxkern.problems.loader.resolve` says more).

    Raises:
        ProblemLoadError: Unknown name, or a file or module that cannot be loaded.
    """
    return loader.resolve(spec, names, get)


def __getattr__(name: str) -> ModuleType:
    """fluxkern.problems.<built-in name>: the problem's module, imported on first use."""
    if name in BUILTIN:
        return importlib.import_module(BUILTIN[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
