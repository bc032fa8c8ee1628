"""Seconds per epoch of SSBroyden before and after the two-pass dense update (issue 13).

Before: the update as of commit efd7320 (H kept as a plain matrix: H g, H y, three rank-1
updates and a division each iteration, ten passes over H). After: fluxkern.optim (H as a scalar
times a matrix, one product and one rank-2 GEMM per iteration). Both run the same problem, seed,
options (scale-free curvature test, tolerances 0) and epochs, alternately (before, after, before,
after) so that load on the machine hits both alike; the losses after the timed epochs are
printed so the two can be seen to do the same work (they agree to rounding).

Usage: python bench/dense_update_speed.py [PROBLEM] [--epochs 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_info  # noqa: E402
from fluxkern import problems, solver  # noqa: E402
from fluxkern.optim.quasi_newton import SSBroyden  # noqa: E402

BEFORE = "efd7320d52479efecdc792482b2098caf73dcb2c"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _old_class() -> type:
    """SSBroyden as of BEFORE, loaded from git into a temporary module."""
    src = subprocess.run(
        ["git", "show", f"{BEFORE}:python/fluxkern/optim/quasi_newton.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = os.path.join(tempfile.mkdtemp(), "quasi_newton_before.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("quasi_newton_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SSBroyden


def time_epochs(name: str, cls: type, epochs: int) -> tuple[float, float]:
    """(seconds per epoch over `epochs` epochs after 2 warm ones, the final loss)."""
    prob = problems.get(name)
    trainer = solver.make_trainer(prob, solver.effective_options(prob, seed=0, progress=False))
    trainer.optimizer = cls(
        trainer.params, curvature_eps=1e-12, tolerance_grad=0.0, tolerance_change=0.0
    )
    trainer.step()
    trainer.step()
    t0 = time.perf_counter()
    for _ in range(epochs):
        record = trainer.step()
    return (time.perf_counter() - t0) / epochs, record.loss


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("problem", nargs="?", default="stokes")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(json.dumps(machine_info()), flush=True)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    old = _old_class()
    for label, cls in (("before", old), ("after", SSBroyden)) * 2:
        sec, loss = time_epochs(args.problem, cls, args.epochs)
        print(f"{label:6s} {args.problem}: {sec:.3f} s per epoch, loss {loss:.12e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
