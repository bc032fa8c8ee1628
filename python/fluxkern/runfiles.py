"""A run's files: atomic writes, the output folder, reading a checkpoint to resume from.

Every write goes through ``path.tmp`` and ``os.replace``, so a failure leaves an older file as
it was; every failure is a :class:`RunFileError` that names the file and what was kept.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import IO, Any

import torch

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_KEYS",
    "MODEL",
    "RunFileError",
    "atomic_save",
    "prepare_out",
    "read_checkpoint",
    "reason",
    "write_file",
    "write_json",
]

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"  # the trained network and multipliers (small; no optimizer state)

CHECKPOINT_KEYS = (
    "problem",
    "formulation",
    "epoch",
    "elapsed_s",
    "model",
    "optimizer",
    "dual",
    "history",
    "rng",
)


class RunFileError(ValueError):
    """A file or folder of the run cannot be read or written; files written before are kept.

    Attributes:
        path: The file or folder.
        reason: What is wrong with it (and what was kept), without the path.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def reason(exc: BaseException) -> str:
    """The first line of an exception's message (strerror for OSError)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first.split(". ", 1)[0]  # torch's long messages: their first sentence


def write_file(path: str, write: Callable[[IO[bytes]], None], kept: str) -> None:
    """Writes path atomically through path.tmp: a failure leaves an older file as it was.

    Args:
        path: The file to write.
        write: Writes the content into the open (binary) file it is given.
        kept: What was kept, the end of the error's message.

    Raises:
        RunFileError: The file could not be written.
    """
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch.save's writer raises RuntimeError
        if os.path.isfile(tmp):
            os.remove(tmp)
        raise RunFileError(path, f"cannot write it ({reason(exc)}); {kept}") from None


def atomic_save(obj: Any, path: str, kept: str = "an older file there is unchanged") -> None:
    """torch.save(obj) into path atomically (see :func:`write_file`)."""
    write_file(path, lambda fh: torch.save(obj, fh), kept)


def write_json(fh: IO[bytes], obj: Any, indent: int | None) -> None:
    """json.dumps(obj, indent=indent) into a binary file."""
    fh.write(json.dumps(obj, indent=indent).encode())


def prepare_out(out: str) -> None:
    """Creates the output folder and checks that files can be written in it.

    Raises:
        RunFileError: out is a file, cannot be created or is not writable.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunFileError(out, "the output folder is an existing file; name a folder")
    try:
        os.makedirs(out, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".fluxkern-", suffix=".tmp", dir=out)
    except OSError as exc:
        raise RunFileError(out, f"cannot write in the output folder ({reason(exc)})") from None
    os.close(fd)
    os.remove(probe)


def read_checkpoint(path: str, problem: str, formulation: str, epochs: int) -> dict[str, Any]:
    """Loads and checks a checkpoint to resume from; never changes the file.

    Args:
        path: The checkpoint file.
        problem: The name of the run's problem.
        formulation: "flux" or "pinn".
        epochs: The epochs the resumed run asks for.

    Returns:
        The checkpoint's dict.

    Raises:
        RunFileError: Missing, unreadable, damaged, of another run, or past epochs.
    """
    if not os.path.exists(path):
        raise RunFileError(path, "resume: no checkpoint here; run without resume to start anew")
    try:
        ck = torch.load(path, weights_only=False)
    except Exception as exc:  # torch.load raises many types on damaged files
        raise RunFileError(
            path, f"resume: not a readable checkpoint ({reason(exc)}); the file is left as it is"
        ) from None
    if not isinstance(ck, dict) or any(k not in ck for k in CHECKPOINT_KEYS):
        raise RunFileError(path, "resume: not a fluxkern checkpoint; the file is left as it is")
    if ck["problem"] != problem or ck["formulation"] != formulation:
        raise RunFileError(
            path,
            f"resume: the checkpoint is of a {ck['problem']}/{ck['formulation']} run, "
            f"not {problem}/{formulation}",
        )
    if ck["epoch"] > epochs:
        raise RunFileError(
            path,
            f"resume: the checkpoint is at epoch {ck['epoch']}, past epochs={epochs}; "
            f"ask for {ck['epoch']} epochs or more",
        )
    return ck
