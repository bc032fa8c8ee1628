"""Finding a problem by registered name, problem file (FILE.py) or module attribute (MOD:ATTR)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from fluxkern.problems.base import Problem

__all__ = ["ProblemLoadError", "resolve"]

ATTRIBUTE = "problem"  # the module-level name a problem file is read from


class ProblemLoadError(ValueError):
    """A problem could not be found or loaded; the message is one line."""


def resolve(spec: str, names: Callable[[], list[str]], get: Callable[[str], Problem]) -> Problem:
    """The problem that `spec` names.

    Args:
        spec: A registered name ("poisson"); a problem file "path/to/file.py" (its module-level
            `problem`, else the only Problem it defines); "path/to/file.py:ATTR"; or
            "package.module:ATTR" (importable from sys.path or the working directory). The
            attribute may be a Problem instance or a Problem subclass (instantiated without
            arguments).
        names: The registered names (fluxkern.problems.names).
        get: A fresh instance of a registered problem by name (fluxkern.problems.get).

    Returns:
        A Problem (a fresh instance for registered names).

    Raises:
        ProblemLoadError: Unknown name, missing file, a file or module that fails to import,
            no or several problems in a file, a missing attribute, or an object that is not a
            Problem.
    """
    if spec in names():
        return get(spec)
    where, sep, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if sep and not attr:
        raise ProblemLoadError(f"{spec!r}: give an attribute after ':'")
    if where.endswith(".py") or os.sep in where or "/" in where or os.path.isfile(where):
        return _from_file(where, attr or None)
    if sep:
        return _from_module(where, attr)
    raise ProblemLoadError(
        f"unknown problem {spec!r}; choose from {', '.join(names())}, "
        "or give a problem file FILE.py or MODULE:ATTRIBUTE"
    )


def _failure(what: str, exc: BaseException, path: str | None = None) -> ProblemLoadError:
    """One line: what raised which exception, with the line of `path` it came from."""
    line = ""
    if path is not None:
        target = os.path.abspath(path)
        frames = traceback.extract_tb(exc.__traceback__)
        lines = [f.lineno for f in frames if os.path.abspath(f.filename) == target]
        if lines:
            line = f" (line {lines[-1]})"
    msg = " ".join(str(exc).split()) or "(no message)"
    return ProblemLoadError(f"{what} raised {type(exc).__name__}: {msg}{line}")


@contextmanager
def _on_path(folder: str):
    """`folder` first on sys.path while a problem's module is imported."""
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass


def _from_file(path: str, attr: str | None) -> Problem:
    if not os.path.exists(path):
        raise ProblemLoadError(f"problem file {path}: no such file")
    if not os.path.isfile(path):
        raise ProblemLoadError(f"problem file {path}: not a file")
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    name = f"_fluxkern_problem_file_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ProblemLoadError(f"problem file {path}: cannot be imported (not a .py file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        with _on_path(os.path.dirname(os.path.abspath(path))):
            spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise _failure(f"problem file {path}", exc, path) from None
    if attr is not None:
        if not hasattr(module, attr):
            raise ProblemLoadError(f"problem file {path} has no attribute {attr!r}")
        return _as_problem(getattr(module, attr), f"{path}:{attr}")
    if hasattr(module, ATTRIBUTE):
        return _as_problem(getattr(module, ATTRIBUTE), f"{path}:{ATTRIBUTE}")
    return _only_problem(module, path)


def _only_problem(module: ModuleType, path: str) -> Problem:
    """The one Problem instance or Problem subclass that the module itself defines."""
    found: dict[str, Any] = {}
    for key, obj in vars(module).items():
        is_instance = isinstance(obj, Problem)
        is_class = (
            inspect.isclass(obj)
            and issubclass(obj, Problem)
            and obj.__module__ == module.__name__
            and not inspect.isabstract(obj)
        )
        if (is_instance or is_class) and all(obj is not o for o in found.values()):
            found[key] = obj
    if not found:
        raise ProblemLoadError(
            f"problem file {path} defines no problem: set problem = fluxkern.problem(...)"
        )
    if len(found) > 1:
        raise ProblemLoadError(
            f"problem file {path} defines {len(found)} problems ({', '.join(found)}): name one "
            f"as {path}:NAME, or call it {ATTRIBUTE!r}"
        )
    ((key, obj),) = found.items()
    return _as_problem(obj, f"{path}:{key}")


def _from_module(modname: str, attr: str) -> Problem:
    try:
        with _on_path(os.getcwd()):
            module = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name and modname.startswith(exc.name):
            raise ProblemLoadError(f"cannot import module {modname!r}: {exc}") from None
        raise _failure(f"module {modname}", exc) from None
    except (Exception, SystemExit) as exc:
        raise _failure(f"module {modname}", exc) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ProblemLoadError(f"module {modname!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return _as_problem(obj, f"{modname}:{attr}")


def _as_problem(obj: Any, where: str) -> Problem:
    if isinstance(obj, Problem):
        return obj
    if inspect.isclass(obj) and issubclass(obj, Problem):
        if inspect.isabstract(obj):
            raise ProblemLoadError(f"{where} is an abstract Problem class")
        try:
            return obj()
        except Exception as exc:
            raise _failure(f"{where}()", exc) from None
    raise ProblemLoadError(
        f"{where} is a {type(obj).__name__}, not a fluxkern Problem (make one with "
        "fluxkern.problem(...))"
    )
