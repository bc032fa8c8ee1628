"""The benchmark problems of PROBLEMS.md, each in flux form with its PINN baseline, and the
tools to declare and load a user's own problem (fluxkern.problem, Sample, resolve)."""

from __future__ import annotations

import copy

from fluxkern.problems import (
    cavity,
    composite_heat,
    convection,
    convection_diffusion,
    helmholtz,
    poisson,
    stokes,
)
from fluxkern.problems.base import EvalGrid, Problem, relative_l2
from fluxkern.problems.declared import DeclaredProblem, problem
from fluxkern.problems.loader import ProblemLoadError, resolve
from fluxkern.problems.points import Points, Sample

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

_REGISTRY: dict[str, type[Problem] | Problem] = {}


def register(entry: type[Problem] | Problem) -> type[Problem] | Problem:
    """Adds a problem to the registry under its name.

    Args:
        entry: A Problem subclass (get() makes a fresh instance) or a Problem instance, e.g. one
            made with fluxkern.problem (get() returns a deep copy).

    Returns:
        entry, so that this works as a class decorator.
    """
    _REGISTRY[entry.name] = entry
    return entry


def names() -> list[str]:
    """The registered problem names, in registration order."""
    return list(_REGISTRY)


def get(name: str) -> Problem:
    """A fresh instance of the problem called `name`.

    Raises:
        KeyError: Unknown name (the message lists the valid ones).
    """
    try:
        entry = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown problem {name!r}; choose from {', '.join(names())}") from None
    return copy.deepcopy(entry) if isinstance(entry, Problem) else entry()


register(poisson.problem)
register(composite_heat.problem)
register(convection.problem)
register(convection_diffusion.problem)
register(stokes.problem)
register(cavity.problem)
register(helmholtz.problem)
