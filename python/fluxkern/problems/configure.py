"""A run's changes to its problem: point counts, the problem's own options and parameters
(SolveOptions.points and .problem_options, `--points` and `--problem-option`)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from fluxkern.problems.base import Problem

__all__ = ["configure", "problem_settings"]


def problem_settings(problem: Problem, solver_options: Iterable[str]) -> dict[str, Any]:
    """The problem's own options (its defaults that are not solver options) and its
    parameters, by name: what ``problem_options`` may set."""
    solver = set(solver_options)
    own = {k: v for k, v in problem.defaults.items() if k not in solver}
    return {**own, **getattr(problem, "params", {})}


def _same_kind(old: Any, new: Any) -> bool:
    """Whether new may replace old: the same type, or numbers for a float."""
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, float):
        return isinstance(new, (int, float))
    return old is None or isinstance(new, type(old))


def configure(
    problem: Problem,
    points: Mapping[str, int],
    problem_options: Mapping[str, Any],
    solver_options: Iterable[str],
) -> Problem:
    """A copy of the problem with the run's point counts, options and parameters.

    Args:
        problem: The problem (not changed).
        points: Counts by point-set name (a Sample set of a declared problem) or by the
            problem's count key (every set that uses it).
        problem_options: The problem's own options and parameters by name.
        solver_options: The names of the solver options (never problem options).

    Returns:
        The problem itself when there is nothing to change, else a changed deep copy.

    Raises:
        ValueError: An unknown name (the message lists the valid ones) or a value of another
            kind than the problem's.
    """
    if not points and not problem_options:
        return problem
    p = copy.deepcopy(problem)
    settings = problem_settings(p, solver_options)
    params = set(getattr(p, "params", {}))
    for key, value in problem_options.items():
        if key not in settings:
            valid = ", ".join(sorted(settings)) or "none"
            raise ValueError(
                f"problem_options: {p.name} has no option or parameter {key!r}; valid: {valid}"
            )
        if not _same_kind(settings[key], value):
            raise ValueError(
                f"problem_options: {key} must be like {settings[key]!r} "
                f"({type(settings[key]).__name__}); got {value!r}"
            )
        if key in params:
            setattr(p, key, value)
        else:
            p.defaults[key] = value
    sets = getattr(p, "point_sets", {})
    for name, n in points.items():
        if name in settings and name not in params and isinstance(settings[name], int):
            p.defaults[name] = n  # a count key
        elif name in sets:
            p.set_point_count(name, n)  # type: ignore[attr-defined]
        else:
            keys = [k for k, v in settings.items() if isinstance(v, int) and k not in params]
            valid = ", ".join(list(sets) + [k for k in keys if k not in sets]) or "none"
            raise ValueError(f"points: {p.name} has no point set or count {name!r}; valid: {valid}")
    return p
