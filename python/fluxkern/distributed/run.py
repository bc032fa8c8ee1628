"""solve(..., distributed=True): one rank's run, with the files written by rank 0.

Every rank builds the same model and draws the same points (from the seed), keeps its shard of
each block and trains; rank 0 alone prepares the output folder, reads the checkpoint to resume
from (and broadcasts it, so the ranks need no shared file system), writes checkpoints,
model.pt, the results and the plots, evaluates the errors, and sends the results to every
rank. A failure on rank 0 is raised on every rank.
"""

from __future__ import annotations

import dataclasses
import os
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch

from fluxkern.distributed.comm import Comm, init
from fluxkern.distributed.lagrangian import DistributedAugmentedLagrangian
from fluxkern.distributed.training import DistributedCheckpoint, DistributedTrainer
from fluxkern.problems.base import Problem
from fluxkern.resume import check_checkpoint, run_identity
from fluxkern.runfiles import (
    CHECKPOINT,
    MODEL,
    OutputLock,
    atomic_save,
    prepare_out,
    read_checkpoint,
)
from fluxkern.training import Callback

if TYPE_CHECKING:
    from fluxkern.solver import SolveOptions

__all__ = ["make_trainer", "run"]


def make_trainer(problem: Problem, opts: SolveOptions, comm: Comm) -> DistributedTrainer:
    """The trainer of one rank: solve's single-process trainer (same model, optimizer and
    points), with the loss replaced by this rank's shard of it.

    Args:
        problem: The problem.
        opts: Validated options (flux formulation).
        comm: This rank's Comm.

    Returns:
        The trainer, at epoch 0, its parameters broadcast from rank 0.
    """
    from fluxkern import solver

    single = solver.make_trainer(problem, dataclasses.replace(opts, distributed=False))
    al = single.al
    if al is None:
        raise ValueError("distributed training runs the flux formulation only")
    shard = DistributedAugmentedLagrangian(
        single.model, al.terms, comm, al.dual, al.backend, **al.rule.options
    )
    return DistributedTrainer(
        single.model,
        shard,
        single.optimizer,
        comm=comm,
        name=single.name,
        problem=problem,
        seed=single.seed,
    )


def _cpu(obj: Any) -> Any:
    """obj with every tensor in it (in dicts, lists, tuples) moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def _resume(trainer: DistributedTrainer, path: str, problem: Problem, opts: Any) -> None:
    """Rank 0 reads and checks the checkpoint and sends it to every rank (through the CPU, so
    that no rank gets tensors on another's GPU); each loads its shard."""
    from fluxkern import solver

    def read() -> dict[str, Any]:
        ck = read_checkpoint(path)
        identity = run_identity(problem, dataclasses.asdict(opts))
        check_checkpoint(ck, path, identity, opts.epochs)
        return _cpu(ck)

    solver.load_trainer_state(trainer, trainer.comm.on_root(read), path)


def run(problem: Problem, opts: SolveOptions, callbacks: list[Callback]) -> dict[str, Any]:
    """solve() of one rank on validated options with distributed=True.

    Returns:
        The results dict (rank 0's, on every rank), with "distributed": world size and backend.
    """
    from fluxkern import solver

    comm = init(opts.device)
    trainer = make_trainer(problem, opts, comm)
    ckpt = None
    if opts.out:
        out = opts.out
        lock = OutputLock(out)
        comm.on_root(lambda: (prepare_out(out), lock.acquire()))
        meta = {**solver.checkpoint_meta(problem, opts), "world_size": comm.world}
        ckpt = DistributedCheckpoint(
            os.path.join(out, CHECKPOINT), opts.checkpoint_every, meta, comm=comm
        )
    shown = dataclasses.replace(opts, progress=opts.progress and comm.is_root)
    try:
        if opts.resume:
            assert ckpt is not None
            _resume(trainer, ckpt.path, problem, opts)
            ckpt.last_epoch = trainer.epoch
        return _train_and_finish(problem, opts, callbacks, trainer, ckpt, shown)
    finally:
        if opts.out:
            lock.release()


def _train_and_finish(
    problem: Problem,
    opts: SolveOptions,
    callbacks: list[Callback],
    trainer: DistributedTrainer,
    ckpt: DistributedCheckpoint | None,
    shown: SolveOptions,
) -> dict[str, Any]:
    """The rest of run(): fit, gather, and rank 0's files and results."""
    from fluxkern import solver

    comm = trainer.comm
    solver._fit(trainer, shown, ckpt, callbacks)
    shard = trainer.al
    assert isinstance(shard, DistributedAugmentedLagrangian)
    al = shard.gather()  # a collective: the whole multipliers, for model.pt and the plots
    info = {"world_size": comm.world, "backend": torch.distributed.get_backend()}

    def finish() -> dict[str, Any]:
        if opts.out:
            atomic_save(
                {
                    "problem": problem.name,
                    "formulation": opts.formulation,
                    "options": dataclasses.asdict(opts),
                    "model": trainer.model.state_dict(),
                    "dual": al.state_dict(),
                },
                os.path.join(opts.out, MODEL),
                kept=f"the trained state is in {os.path.join(opts.out, CHECKPOINT)}",
            )
        dtype, device = getattr(torch, opts.dtype), torch.device(opts.device)
        grid = problem.eval_grid(dtype, device)
        fields = solver.predict(problem, trainer.model, opts.formulation, grid.points)
        results = solver._results(problem, opts, trainer, problem.errors(fields, grid))
        results["distributed"] = info
        if opts.out:
            view: Any = SimpleNamespace(history=trainer.history, al=al)
            solver._write_outputs(opts, problem, grid, fields, results, view)
        return results

    return comm.on_root(finish)
