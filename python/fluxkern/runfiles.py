"""A run's files: atomic writes, the output folder and its lock, reading a checkpoint.

Every write goes to a new temporary file in the same folder, created exclusively (so a planted
file or link of any name is never followed or overwritten), then renamed over the target with
``os.replace`` (which replaces a link there instead of writing through it); a failure leaves an
older file as it was. Every failure is a :class:`RunFileError` that names the file and what was
kept. Checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain containers
only, never code.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Callable
from typing import IO, Any

import torch

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_KEYS",
    "LOCK",
    "MODEL",
    "OutputLock",
    "RunFileError",
    "atomic_save",
    "load_file",
    "prepare_out",
    "read_checkpoint",
    "reason",
    "write_atomically",
    "write_file",
    "write_json",
]

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"  # the trained network and multipliers (small; no optimizer state)
LOCK = ".fluxkern.lock"  # held by the run writing in an output folder

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
    """The first line of an exception's message (strerror for OSError).

    An OSError behind another exception (torch.save reports a failed write, e.g. a full disk,
    as "[enforce fail at inline_container.cc...]" with the OSError as its context) gives its
    strerror.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first.split(". ", 1)[0]  # torch's long messages: their first sentence


def write_atomically(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Writes path atomically: into a new temporary file beside it, then renamed over it.

    The temporary file is created exclusively with a random name (never an existing file or
    link); the rename replaces path itself, so a link planted at path is replaced, not followed.
    A failure leaves an older file at path as it was and removes the temporary file.

    Args:
        path: The file to write.
        write: Writes the content into the open (binary) file it is given.

    Raises:
        OSError: The file could not be written (its filename is path).
        RuntimeError: `write` raised it (torch.save does on a failed write).
    """
    folder, base = os.path.split(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        if tmp is not None and os.path.lexists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror or str(exc), path) from None
        raise


def write_file(path: str, write: Callable[[IO[bytes]], None], kept: str) -> None:
    """:func:`write_atomically`, with a failure as a :class:`RunFileError`.

    Args:
        path: The file to write.
        write: Writes the content into the open (binary) file it is given.
        kept: What was kept, the end of the error's message.

    Raises:
        RunFileError: The file could not be written.
    """
    try:
        write_atomically(path, write)
    except (OSError, RuntimeError) as exc:  # torch.save's writer raises RuntimeError
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


class OutputLock:
    """An exclusive lock on an output folder for the life of a run (``out/.fluxkern.lock``).

    The lock is an advisory ``flock`` on the lock file, so it ends with the process that held
    it (a killed run leaves no stale lock); the file names the holder (pid, host, start time)
    for the message another run gets. Use as a context manager, or :meth:`acquire` and
    :meth:`release`. Where flock does not exist (not POSIX) the lock does nothing.

    Args:
        out: The output folder (it must exist).
    """

    def __init__(self, out: str) -> None:
        self.out = out
        self.path = os.path.join(out, LOCK)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock.

        Raises:
            RunFileError: Another run holds it (the message names it), or the lock file cannot
                be created.
        """
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        for _ in range(10):  # the file may be removed by its holder between open and flock
            try:
                fd = os.open(self.path, flags, 0o644)
            except OSError as exc:
                raise RunFileError(
                    self.out, f"cannot create the run's lock file {LOCK} ({reason(exc)})"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 400).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise RunFileError(
                    self.out,
                    f"another fluxkern run is writing in this output folder ({holder}); wait "
                    "for it to end, or choose another output folder",
                ) from None
            try:
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except OSError:
                same = False
            if same:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {stamp}".encode())
                self._fd = fd
                return
            os.close(fd)  # locked a file its holder had just removed: try the new one
        raise RunFileError(self.out, f"cannot take the run's lock file {LOCK}")

    def release(self) -> None:
        """Ends the lock and removes the lock file (nothing if not held)."""
        if self._fd is None:
            return
        try:
            os.remove(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def load_file(path: str, what: str) -> Any:
    """torch.load(path, weights_only=True) on the CPU: tensors and plain containers, no code.

    Args:
        path: The file.
        what: What it should be, for messages (e.g. "resume: not a readable checkpoint").

    Raises:
        RunFileError: Missing, unreadable, damaged, or holding anything but tensors and plain
            containers (a pickled object is refused, never run).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunFileError(path, f"{what}: no such file") from None
    except Exception as exc:  # torch.load raises many types on damaged or crafted files
        text = str(exc)
        if "Weights only load failed" in text or "Unsupported global" in text:
            why = "it holds Python objects besides tensors and plain data; those are never loaded"
        else:
            why = reason(exc)
        raise RunFileError(path, f"{what} ({why}); the file is left as it is") from None


def read_checkpoint(path: str) -> dict[str, Any]:
    """Loads a checkpoint to resume from; never changes the file.

    Its fields and whether it belongs to the run are checked by :mod:`fluxkern.resume`.

    Args:
        path: The checkpoint file.

    Returns:
        The checkpoint's dict.

    Raises:
        RunFileError: Missing, unreadable, damaged, holding code, or not a checkpoint.
    """
    if not os.path.exists(path):
        raise RunFileError(path, "resume: no checkpoint here; run without resume to start anew")
    ck = load_file(path, "resume: not a readable checkpoint")
    if not isinstance(ck, dict) or any(k not in ck for k in CHECKPOINT_KEYS):
        raise RunFileError(path, "resume: not a fluxkern checkpoint; the file is left as it is")
    return ck
