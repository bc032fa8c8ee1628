"""The process group of a distributed run, its collectives, and the sharding of point blocks.

Every collective of fluxkern's data-parallel training goes through :class:`Comm`, which turns
a failed or timed-out collective (a rank that crashed, was killed or stalled) into a
:class:`DistributedError` naming the rank and the operation, so the other ranks end with a
clear message instead of hanging. The timeout is the process group's
(``init_process_group(timeout=...)``).

Sharding: every rank draws the same points from the seed and keeps a contiguous slice of each
block (:func:`shard_range`): rank r of W holds points [n r // W, n (r + 1) // W), so the shards
in rank order are exactly the single-process block. Paired blocks are split by pair.
"""

from __future__ import annotations

import atexit
import copy
import gc
import os
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from fluxkern.blocks import Block
from fluxkern.runfiles import RunFileError, reason

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "TIMEOUT_ENV",
    "Comm",
    "DistributedError",
    "end_process",
    "init",
    "shard_block",
    "shard_range",
    "shutdown",
]

DEFAULT_TIMEOUT_S = 600.0
TIMEOUT_ENV = "FLUXKERN_DIST_TIMEOUT_S"  # seconds a collective may wait for the other ranks
_LAUNCH_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_created = False  # whether init() created the default process group in this process

T = TypeVar("T")


class DistributedError(RuntimeError):
    """A collective failed: another rank crashed, was killed or stalled past the timeout."""


class Comm:
    """One rank's view of the process group: its rank, the world size and the collectives.

    Args:
        rank: This process's rank.
        world: The number of ranks.
        device: The device of the tensors reduced (the model's).
        timeout_s: The collective timeout of the process group (for messages).
    """

    def __init__(self, rank: int, world: int, device: torch.device, timeout_s: float) -> None:
        self.rank, self.world, self.device, self.timeout_s = rank, world, device, timeout_s

    @property
    def is_root(self) -> bool:
        """Whether this is rank 0 (the rank that writes files)."""
        return self.rank == 0

    def _run(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except RuntimeError as exc:  # torch.distributed's errors (DistError) are RuntimeErrors
            # The failed collective's frames (in the traceback) hold its work and tensors;
            # dropped, so they are freed now and not at interpreter exit (see shutdown()).
            exc.__traceback__ = None
            try:  # a broken group cannot be used again; destroying it lets the process exit
                shutdown()
            except RuntimeError:
                pass
            raise DistributedError(
                f"rank {self.rank} of {self.world}: {what} failed ({reason(exc)}); another rank "
                f"has probably stopped (crashed, was killed or waited past the collective "
                f"timeout of {self.timeout_s:g} s), so the run ends here (the process group "
                "is destroyed)"
            ) from exc

    def _reduce(self, t: Tensor, op: Any, what: str) -> Tensor:
        out = t.detach().clone()
        self._run(what, lambda: dist.all_reduce(out, op=op))
        return out

    def sum(self, t: Tensor) -> Tensor:
        """The elementwise sum of t over the ranks (a new tensor; t is unchanged)."""
        return self._reduce(t, dist.ReduceOp.SUM, "all-reduce (sum)")

    def max(self, t: Tensor) -> Tensor:
        """The elementwise maximum of t over the ranks (a new tensor)."""
        return self._reduce(t, dist.ReduceOp.MAX, "all-reduce (max)")

    def broadcast_(self, t: Tensor, src: int = 0) -> Tensor:
        """Overwrites t with rank src's t, in place; returns t."""
        self._run("broadcast", lambda: dist.broadcast(t, src))
        return t

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's obj (picklable; tensors should be on the CPU), in rank order."""
        out: list[Any] = [None] * self.world
        self._run("all-gather", lambda: dist.all_gather_object(out, obj))
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Rank src's obj on every rank."""
        box = [obj]
        self._run("broadcast", lambda: dist.broadcast_object_list(box, src))
        return box[0]

    def on_root(self, fn: Callable[[], T]) -> T:
        """Runs fn on rank 0 only and returns its value on every rank.

        An exception of fn is raised on every rank: rank 0 raises it as it is; the others raise
        the same RunFileError (a file of the run) or a DistributedError quoting it.
        """
        outcome: tuple[str, Any] = ("ok", None)
        error: BaseException | None = None
        if self.is_root:
            try:
                outcome = ("ok", fn())
            except RunFileError as exc:
                error, outcome = exc, ("file", (exc.path, exc.reason))
            except Exception as exc:
                error, outcome = exc, ("error", f"{type(exc).__name__}: {exc}")
        kind, value = self.broadcast_object(outcome)
        if error is not None:
            raise error
        if kind == "file":
            raise RunFileError(*value)
        if kind == "error":
            raise DistributedError(f"rank {self.rank}: rank 0 failed: {value}")
        return value


def _timeout_s(timeout_s: float | None) -> float:
    if timeout_s is not None:
        val: float = timeout_s
    else:
        try:
            val = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
        except ValueError:
            raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds") from None
    if not val > 0:
        raise ValueError(f"the collective timeout must be positive; got {val!r}")
    return val


def _rendezvous(backend: str, timeout: float) -> None:
    """init_process_group from torchrun's environment, saying on stderr what it waits for and
    turning a rendezvous that times out (a rank that never started) into one line.

    Raises:
        DistributedError: Not every rank joined within the timeout.
    """
    rank, world = os.environ["RANK"], os.environ["WORLD_SIZE"]
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    print(
        f"fluxkern: rank {rank} of {world} joining the other ranks at {where} (waits up to "
        f"{timeout:g} s, {TIMEOUT_ENV})",
        file=sys.stderr,
        flush=True,
    )
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
    except (RuntimeError, ValueError) as exc:  # DistStoreError and friends
        raise DistributedError(
            f"rank {rank}: the rendezvous of {world} ranks at {where} failed within "
            f"{timeout:g} s ({reason(exc)}); start every rank (torchrun --nproc-per-node "
            f"{world}) or set {TIMEOUT_ENV}"
        ) from None


def init(device: str | torch.device = "cpu", timeout_s: float | None = None) -> Comm:
    """Joins (or creates) the default process group and returns this rank's Comm.

    An existing process group (torch.distributed.init_process_group called by the user or a
    test) is used as it is. Otherwise the group is created from the environment torchrun sets
    (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; LOCAL_RANK picks the GPU), with NCCL for
    CUDA and gloo for the CPU.

    Args:
        device: "cpu" or "cuda" (the model's device).
        timeout_s: Seconds a collective waits for the other ranks before it fails; default
            the environment variable FLUXKERN_DIST_TIMEOUT_S, else 600.

    Returns:
        The Comm.

    Raises:
        ValueError: No process group and no torchrun environment, or NCCL with a CPU device.
    """
    device = torch.device(device)
    timeout = _timeout_s(timeout_s)
    if not dist.is_available():
        raise ValueError("distributed training needs torch.distributed, which this torch lacks")
    if not dist.is_initialized():
        missing = [k for k in _LAUNCH_ENV if k not in os.environ]
        if missing:
            raise ValueError(
                "distributed=True needs a process group: launch with torchrun (e.g. torchrun "
                "--nproc-per-node 2 -m fluxkern solve NAME) or call "
                f"torch.distributed.init_process_group first; missing {', '.join(missing)}"
            )
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "nccl" if device.type == "cuda" else "gloo"
        _rendezvous(backend, timeout)
        # A gloo group still alive when the interpreter exits aborts the process in about half
        # of the exits (torch 2.13; measured 5 of 10 two-rank runs; see shutdown()).
        atexit.register(shutdown)
        global _created
        _created = True
    if dist.get_backend() == "nccl" and device.type != "cuda":
        raise ValueError("the process group uses NCCL, which needs device='cuda'; use gloo on CPUs")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return Comm(dist.get_rank(), dist.get_world_size(), device, timeout)


def shutdown() -> None:
    """Destroys the default process group, if there is one.

    A group that :func:`init` created is destroyed at interpreter exit as well; a group you
    created yourself is yours to destroy (torch.distributed.destroy_process_group or this).
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        # torch 2.13's gloo worker threads free the tensors of the last collectives, which
        # takes the GIL; a thread still waiting for it when the interpreter exits ends the
        # process with "terminate called without an active exception" (exit code -6; seen in
        # gdb). Collecting and a few short sleeps let such threads run first: a mitigation
        # (1-2 of 10 two-rank exits aborted before, 0 of 24 after), not a guarantee;
        # end_process() is one.
        gc.collect()
        for _ in range(5):
            time.sleep(0.01)


def end_process(code: int) -> None:
    """Ends this rank's process now with the exit code, if init() created its process group.

    Destroys the group, flushes stdout and stderr and calls os._exit, which skips the
    interpreter's teardown where torch 2.13's gloo worker threads can abort the process (see
    shutdown()). A process without a group that fluxkern created just returns. Meant for the
    end of a launched rank's script (the fluxkern command does this after a distributed run).

    Args:
        code: The exit code.
    """
    if not _created:
        return
    shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def shard_range(n: int, rank: int, world: int) -> tuple[int, int]:
    """The rows [start, stop) of n that rank `rank` of `world` holds (contiguous, in order).

    Raises:
        ValueError: rank outside [0, world).
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in [0, {world})")
    return n * rank // world, n * (rank + 1) // world


def shard_block(block: Block, rank: int, world: int) -> Block:
    """The shard of a block that rank `rank` of `world` holds: its slice of the points (pairs)
    and data, with n the shard's count and n_global the whole block's (a "mean" divides by it).

    Args:
        block: An Objective or Constraint (not itself a shard).
        rank: The rank.
        world: The number of ranks.

    Returns:
        A copy of the block on its slice (possibly empty); the block is unchanged.

    Raises:
        ValueError: The block is already a shard, or rank is outside [0, world).
    """
    if block.n_global != block.n:
        raise ValueError(f"block {block.name!r} is already a shard; shard the whole block")
    n = block.n
    i0, i1 = shard_range(n, rank, world)

    def rows(t: Tensor) -> Tensor:  # the shard's rows of a per-point tensor [P, ...]
        return torch.cat([t[i0:i1], t[n + i0 : n + i1]]) if block.paired else t[i0:i1]

    part = copy.copy(block)
    part.points = rows(block.points)
    part.data = {k: rows(v) for k, v in block.data.items()}
    part.n, part.n_global = i1 - i0, n
    return part
