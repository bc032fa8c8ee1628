"""The problem registry: names to problems, the built-in benchmark problems loaded on first use.

A built-in problem's module (fluxkern.problems.<name>) is imported the first time its name is
asked for (get, resolve), so importing fluxkern builds no problem. names() lists the built-in
problems first, in the order of PROBLEMS.md's table, then those added with register().
"""

from __future__ import annotations

import copy
import importlib

from fluxkern.problems.base import Problem

__all__ = ["BUILTIN", "get", "names", "register"]

# name -> module of the built-in problems (each defines `problem`), in names() order
BUILTIN: dict[str, str] = {
    name: f"fluxkern.problems.{name}"
    for name in (
        "poisson",
        "composite_heat",
        "convection",
        "convection_diffusion",
        "stokes",
        "cavity",
        "helmholtz",
    )
}

# a module name (str) until the built-in problem is first asked for, then the problem
_REGISTRY: dict[str, type[Problem] | Problem | str] = dict(BUILTIN)


def register(entry: type[Problem] | Problem) -> type[Problem] | Problem:
    """Adds a problem to the registry under its name (replacing one of that name in its place).

    Args:
        entry: A Problem subclass (get() makes a fresh instance) or a Problem instance, e.g. one
            made with fluxkern.problem (get() returns a deep copy).

    Returns:
        entry, so that this works as a class decorator.
    """
    _REGISTRY[entry.name] = entry
    return entry


def names() -> list[str]:
    """The registered problem names: the built-in problems, then those registered."""
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
    if isinstance(entry, str):  # a built-in problem not loaded yet
        entry = importlib.import_module(entry).problem
        if entry.name != name:
            raise RuntimeError(f"{BUILTIN[name]}.problem is named {entry.name!r}, not {name!r}")
        _REGISTRY[name] = entry
    return copy.deepcopy(entry) if isinstance(entry, Problem) else entry()
