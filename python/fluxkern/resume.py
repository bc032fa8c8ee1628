"""Whether a checkpoint may be resumed by a run: its fields, and the run's identity.

A checkpoint records the identity of the run that wrote it (:func:`run_identity`: the problem
and its setup, the seed, the dtype, the optimizers and the dual rule with their options, the
redraws). A resume continues only the same run: any difference is refused in one line that
names the option and both values. The options that may change on resume (:data:`MAY_CHANGE`:
epochs, the time limit, the checkpoint interval, the learning rate, the output, the backend and
device) are applied by the resumed run and recorded in its results.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import torch

from fluxkern.runfiles import RunFileError

__all__ = [
    "IDENTITY_OPTIONS",
    "MAY_CHANGE",
    "changed_options",
    "check_checkpoint",
    "check_fields",
    "check_identity",
    "run_identity",
]

# Options of SolveOptions that make a run what it is: a resume must give the same values.
IDENTITY_OPTIONS = (
    "formulation",
    "seed",
    "dtype",
    "optimizer",
    "optimizer_options",
    "then_optimizer",
    "then_optimizer_options",
    "switch_epoch",
    "dual",
    "dual_options",
    "resample_every",
    "resample_keep_optimizer",
    "resample_method",
    "resample_final",
    "resample_auto",
)

# Identity keys written only when given (run_identity), with the value their absence means.
OPTIONAL_IDENTITY: dict[str, Any] = {"output_scale": {}, "continuation": {}}

# Options a resume may change; they take effect in the resumed run and are recorded.
MAY_CHANGE = (
    "epochs",
    "time_limit",
    "lr",
    "checkpoint_every",
    "backend",
    "device",
    "matmul_precision",
    "progress",
    "plots",
)


def _plain(value: Any) -> Any:
    """value as plain data a weights-only load reads back (numbers, strings, lists, dicts)."""
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() <= 16:
        return value.detach().cpu().tolist()
    return repr(value)


def run_identity(problem: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """What makes a run the run it is, as plain data (stored in its checkpoints).

    Args:
        problem: The run's Problem.
        options: The run's options (dataclasses.asdict of its SolveOptions).

    Returns:
        {"problem": name, "network": [...], "setup": {...}, option: value, ...}.
    """
    valid = set(options)
    setup = {k: v for k, v in problem.defaults.items() if k not in valid}
    identity: dict[str, Any] = {
        "problem": problem.name,
        "inputs": list(problem.input_names),
        "outputs": list(problem.output_names),
        "network": [problem.width, problem.depth, problem.activation],
        "setup": _plain(setup),
        "parameters": _plain(getattr(problem, "params", {})),
    }
    identity.update({k: _plain(options.get(k)) for k in IDENTITY_OPTIONS})
    for key in ("points", "parameter_values"):  # options that shape the problem, if present
        if key in options:
            identity[key] = _plain(options[key])
    for key in OPTIONAL_IDENTITY:  # only when given: runs from before them stay resumable
        if options.get(key):
            identity[key] = _plain(options[key])
    return identity


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite_tensors(state: Any) -> bool:
    """Whether every floating tensor in a (nested) state is finite."""
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(torch.isfinite(state).all())
    if isinstance(state, Mapping):
        return all(_finite_tensors(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return all(_finite_tensors(v) for v in state)
    return True


def _check_fields(ck: Mapping[str, Any], path: str, epochs: int) -> None:
    """The checkpoint's fields have the types and ranges a run writes."""

    def bad(what: str) -> RunFileError:
        return RunFileError(path, f"resume: damaged checkpoint ({what}); the file is left as it is")

    epoch = ck["epoch"]
    if not _is_int(epoch) or epoch < 0:
        raise bad(f"its epoch is {epoch!r}, not a non-negative integer")
    if epoch > epochs:
        raise RunFileError(
            path,
            f"resume: the checkpoint is at epoch {epoch}, past epochs={epochs}; "
            f"ask for {epoch} epochs or more",
        )
    elapsed = ck["elapsed_s"]
    ok = isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool)
    if not ok or not math.isfinite(elapsed) or elapsed < 0:
        raise bad(f"its elapsed_s is {elapsed!r}, not a non-negative number of seconds")
    model = ck["model"]
    if not isinstance(model, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in model.values()
    ):
        raise bad("its model is not a state dict of tensors")
    if not isinstance(ck["optimizer"], Mapping):
        raise bad("its optimizer state is not a dict")
    if ck["dual"] is not None and not isinstance(ck["dual"], Mapping):
        raise bad("its multipliers are not a dict")
    history = ck["history"]
    if not isinstance(history, Mapping) or any(
        not isinstance(v, list) or len(v) != epoch for v in history.values()
    ):
        raise bad(f"its history does not hold one record per epoch for {epoch} epochs")
    rng = ck["rng"]
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8:
        raise bad("its random generator state is not a byte tensor")
    switched = ck.get("switched_at")
    if switched is not None and (not _is_int(switched) or not 0 <= switched <= epoch):
        raise bad(f"its switched_at is {switched!r}, not an epoch in 0..{epoch}")
    if not _finite_tensors(model) or not _finite_tensors(ck["dual"]):
        raise RunFileError(
            path,
            "resume: the checkpoint's network or multipliers hold NaN or infinite values (a "
            "diverged run); it cannot be continued: start anew without resume",
        )


def _shown(value: Any) -> str:
    return "none" if value is None else repr(value)


def check_checkpoint(
    ck: Mapping[str, Any], path: str, identity: Mapping[str, Any], epochs: int
) -> None:
    """Refuses a checkpoint that is damaged or of another run than `identity`
    (:func:`check_fields`, then :func:`check_identity`).

    Args:
        ck: The loaded checkpoint (fluxkern.runfiles.read_checkpoint).
        path: Its file, for messages.
        identity: The resuming run's :func:`run_identity`.
        epochs: The epochs the resumed run asks for.

    Raises:
        RunFileError: A field of the wrong type or range, or a run of another identity.
    """
    check_fields(ck, path, identity, epochs)
    check_identity(ck, path, identity)


def check_fields(
    ck: Mapping[str, Any], path: str, identity: Mapping[str, Any], epochs: int
) -> None:
    """Refuses a checkpoint of another problem or formulation, or with a field of the wrong type
    or range (the epoch, the elapsed time, the states, the history, non-finite weights).

    Raises:
        RunFileError: What is wrong, in one line.
    """
    problem, formulation = identity["problem"], identity["formulation"]
    if ck["problem"] != problem or ck["formulation"] != formulation:
        raise RunFileError(
            path,
            f"resume: the checkpoint is of a {ck['problem']}/{ck['formulation']} run, "
            f"not {problem}/{formulation}",
        )
    _check_fields(ck, path, epochs)


def check_identity(ck: Mapping[str, Any], path: str, identity: Mapping[str, Any]) -> None:
    """Refuses a checkpoint of a run whose identity differs from this run's.

    Raises:
        RunFileError: The first differing option, with both values, in one line.
    """
    saved = ck.get("identity")
    if not isinstance(saved, Mapping):
        raise RunFileError(
            path,
            "resume: the checkpoint does not record its run's options, so it cannot be checked "
            "to belong to this run; start anew without resume",
        )
    # keys written only when they differ from a default (runs from before they existed match)
    optional = {k: v for k, v in OPTIONAL_IDENTITY.items() if k in saved or k in identity}
    both = {k: identity.get(k, v) for k, v in optional.items()}
    saved = {**{k: saved.get(k, v) for k, v in optional.items()}, **saved}
    for key, value in {**identity, **both}.items():
        if key in saved and saved[key] != value:
            label = key.replace("_", " ")
            raise RunFileError(
                path,
                f"resume: {label} differs: the checkpoint's run has {_shown(saved[key])}, this "
                f"run {_shown(value)}; give the same {label} to continue it, or start anew "
                "without resume",
            )


def changed_options(
    saved: Mapping[str, Any] | None, options: Mapping[str, Any]
) -> dict[str, list[Any]]:
    """The options a resume changed: {name: [checkpoint's value, this run's value]}.

    Args:
        saved: The options stored in the checkpoint (its "options"), or None.
        options: The resumed run's options.
    """
    if not isinstance(saved, Mapping):
        return {}
    return {
        k: [_plain(saved.get(k)), _plain(options.get(k))]
        for k in MAY_CHANGE
        if k in options and saved.get(k) != options.get(k)
    }
