"""One rank of the distributed tests (tests/test_distributed.py starts 2 or 3 of them).

Usage: python dist_worker.py CASES.json, with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT
set as torchrun sets them. Runs the cases in order on one process group; each is
{"out", "options", "copy_from"?, "resample"?, "fault"?}. A case that fails writes
out/error-RANK.txt and ends the worker with exit code 3.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time

import torch

import fluxkern as fk
from fluxkern import problems
from fluxkern.distributed import end_process
from fluxkern.geometry import Rectangle, periodic_pairs


def mixed_problem() -> problems.Problem:
    """poisson on few points (uneven shards), with a global-multiplier mean block, a paired
    (periodic) block, a one-point global block of signed form and a sum-reduced one."""
    p = problems.get("poisson")
    p.defaults = {**p.defaults, "n_interior": 37, "n_boundary": 19}
    p.width, p.depth = 8, 2
    poisson_terms = p.flux_terms

    def flux_terms(seed: int, dtype: torch.dtype, device: torch.device) -> list:
        terms = poisson_terms(seed, dtype, device)
        x, y = fk.inputs("x y")
        u, q1, _ = fk.outputs("u q1 q2")
        dom = Rectangle([0.0, 0.0], [1.0, 1.0])
        xa, xb = periodic_pairs(dom, 0, 11, seed=seed + 5, dtype=dtype, device=device)
        corner = torch.tensor([[0.0, 0.0]], dtype=dtype, device=device)
        bnd = terms[2]
        return [
            terms[0],
            terms[1],
            fk.Constraint("boundary", u, bnd.points, multiplier="global"),  # mean, global
            fk.Constraint("periodic", [u, q1], (xa, xb), reduction="sum"),  # pointwise pairs
            fk.Constraint("pin", u, corner, form="signed", multiplier="global", reduction="sum"),
        ]

    p.flux_terms = flux_terms  # type: ignore[method-assign]
    return p


class _Fault(fk.Callback):
    """At the end of an epoch: kills (SIGKILL) this rank ("die"), stalls it ("stall") or asks
    to stop the run on this rank only ("stop")."""

    def __init__(self, epoch: int, kind: str) -> None:
        self.epoch, self.kind = epoch, kind

    def on_epoch_end(self, trainer, record):  # noqa: ANN001, ANN201
        if record.epoch == self.epoch:
            if self.kind == "stop":
                return True
            if self.kind == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(3600)
        return None


def run_case(case: dict, rank: int) -> None:
    out = case["out"]
    if rank == 0 and case.get("copy_from"):
        shutil.copytree(case["copy_from"], out)
    callbacks = []
    if case.get("resample"):
        callbacks.append(fk.Resample(case["resample"]))
    fault = case.get("fault")
    if fault and fault["rank"] == rank:
        callbacks.append(_Fault(fault["epoch"], fault["kind"]))
    t = time.perf_counter()
    fk.solve(
        mixed_problem(),
        callbacks=callbacks,
        distributed=True,
        out=out,
        progress=False,
        plots=False,
        **case["options"],
    )
    if rank == 0:
        with open(os.path.join(out, "seconds.txt"), "w") as fh:
            fh.write(f"{time.perf_counter() - t}\n")


def main() -> int:
    rank = int(os.environ["RANK"])
    with open(sys.argv[1]) as fh:
        cases = json.load(fh)
    for case in cases:
        t = time.perf_counter()
        try:
            run_case(case, rank)
        except Exception as exc:
            os.makedirs(case["out"], exist_ok=True)
            with open(os.path.join(case["out"], f"error-{rank}.txt"), "w") as fh:
                fh.write(f"{type(exc).__name__}\n{time.perf_counter() - t}\n{exc}\n")
            return 3
    return 0


if __name__ == "__main__":
    code = main()
    end_process(code)  # what `fluxkern solve` does at the end of a rank (returns only if no group)
    raise SystemExit(code)
