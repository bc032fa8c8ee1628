"""Config files of `fluxkern solve`: reading a TOML config of solve options and writing the
effective options back as one (--print-config)."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["ConfigError", "load", "to_toml"]


class ConfigError(ValueError):
    """A config file that cannot be read or holds a bad key or value."""


def load(path: str) -> dict[str, Any]:
    """Reads a TOML config whose keys are solve options and checks its keys and types.

    Args:
        path: The config file.

    Returns:
        The options it sets.

    Raises:
        ConfigError: Unreadable, not TOML, an unknown key, a value of the wrong type or
            outside an option's choices ("PATH: config: what is wrong").
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    from fluxkern.options import SolveOptions, option_names

    try:
        with open(path, "rb") as fh:
            cfg = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: config: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config: not valid TOML (not UTF-8 text)") from None
    valid = [n for n in option_names() if n not in ("out", "resume")]
    types = {
        "epochs": int,
        "checkpoint_every": int,
        "time_limit": (int, float),
        "points": dict,
        "problem_options": dict,
        "output_scale": dict,
        "continuation": dict,
        "resample_every": int,
        "resample_keep_optimizer": bool,
        "resample_method": str,
        "resample_final": (int, float),
        "resample_auto": bool,
        "seed": int,
        "lr": (int, float),
        "optimizer": str,
        "optimizer_options": dict,
        "then_optimizer": str,
        "then_optimizer_options": dict,
        "switch_epoch": int,
        "dtype": str,
        "device": str,
        "backend": str,
        "formulation": str,
        "dual": str,
        "dual_options": dict,
        "matmul_precision": str,
        "progress": bool,
        "plots": bool,
        "unseen_check": bool,
        "distributed": bool,
    }
    for key, val in cfg.items():
        if key not in valid:
            raise ConfigError(
                f"{path}: config: unknown key {key!r}; valid keys: {', '.join(valid)}"
            )
        want = types.get(key)
        if want is not None and (
            not isinstance(val, want) or (want is int and isinstance(val, bool))
        ):
            names = want.__name__ if isinstance(want, type) else "number"
            raise ConfigError(f"{path}: config: {key!r} must be {names}, got {val!r}")
        if key in SolveOptions.CHOICES and val not in SolveOptions.CHOICES[key]:
            choices = ", ".join(str(c) for c in SolveOptions.CHOICES[key] if c is not None)
            raise ConfigError(f"{path}: config: {key} must be one of {choices}; got {val!r}")
    return cfg


def _toml_value(val: Any) -> str:
    """A TOML scalar or an array of them: bool, int, float (repr: 1e-08, inf and nan are TOML
    too) or string."""
    if isinstance(val, bool):
        return "true" if val else "false"
    if isinstance(val, int):
        return str(val)
    if isinstance(val, float):
        return repr(val)
    if isinstance(val, str):
        return json.dumps(val)  # JSON's escapes are a subset of a TOML basic string's
    if isinstance(val, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in val) + "]"
    raise ConfigError(f"cannot write {val!r} as a TOML value")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_table(name: str, values: dict[str, Any], sources: dict[str, str], note: str) -> list:
    """A TOML table of options with the source of its values in a comment after the header."""
    source = sources.get(name, "default").replace("\n", " ")
    head = [f"\n[{name}]  # {source}{note}"]
    return head + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items()]


def to_toml(problem: Any, opts: Any, sources: dict[str, str], out: str) -> str:
    """The effective options of a solve as a TOML config that load() reads back.

    Args:
        problem: The problem (its name heads the file).
        opts: The effective SolveOptions.
        sources: Where each option's value came from ("problem", "config FILE", ...); an
            option not named is a default.
        out: The output folder (a command-line-only option, written as a comment).

    Returns:
        The TOML text, each value followed by its source in a comment.
    """
    from fluxkern.duals import RULES

    lines = [
        f"# fluxkern solve {problem.name}: the effective options (the problem's defaults, then",
        "# --config, then the command line); give this file back with --config FILE.toml.",
        f"# Command line only: --out {out}",
    ]
    notes = {
        "lr": "not set: lbfgs uses 1.0, adam 0.001",
        "then_optimizer": "not set: one optimizer throughout",
        "backend": "not set: the fastest available for the device",
    }
    for key, val in vars(opts).items():
        if key in ("out", "resume") or isinstance(val, dict):  # the tables come after
            continue
        if val is None:
            lines.append(f"# {key}: {notes.get(key, 'not set')}")
        else:
            source = sources.get(key, "default").replace("\n", " ")
            lines.append(f"{key} = {_toml_value(val)}  # {source}")
    own = "; the optimizer's own defaults otherwise"
    lines += _toml_table("optimizer_options", opts.optimizer_options, sources, own)
    if opts.then_optimizer is not None or opts.then_optimizer_options:
        lines += _toml_table("then_optimizer_options", opts.then_optimizer_options, sources, own)
    lines += _toml_table("dual_options", opts.dual_options, sources, "")
    unset = {k: v for k, v in RULES[opts.dual].DEFAULTS.items() if k not in opts.dual_options}
    if unset:
        shown = ", ".join(f"{k} = {v!r}" for k, v in unset.items())
        lines.append(f"# not set, the {opts.dual} rule's defaults: {shown}")
    if opts.points:
        lines += _toml_table("points", opts.points, sources, "; the problem's counts otherwise")
    if opts.problem_options:
        lines += _toml_table("problem_options", opts.problem_options, sources, "")
    if opts.output_scale:
        lines += _toml_table("output_scale", opts.output_scale, sources, "; 1 otherwise")
    if opts.continuation or problem.defaults.get("continuation"):  # an empty table turns it off
        none = "" if opts.continuation else ": none (the problem's own turned off)"
        lines += _toml_table("continuation", opts.continuation, sources, none)
    return "\n".join(lines) + "\n"
