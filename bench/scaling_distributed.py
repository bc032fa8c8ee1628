"""Scaling of data-parallel training (fluxkern.distributed) on this machine, one thread a rank.

Runs poisson with N interior points (default 65536) as one plain process and as 1 and 2
gloo ranks (started here with torchrun's environment variables), each rank with one torch
thread, for a few epochs of Adam and of L-BFGS, and reports seconds per epoch (the median of
the epochs after the first), loss evaluations per epoch and the seconds spent in all-reduces
(timed around fluxkern.distributed.Comm's collectives on rank 0). The last is the measurement
behind the choice of an explicit all-reduce over DistributedDataParallel: DDP could overlap at
most that share with the backward pass.

    python bench/scaling_distributed.py [--n 65536] [--adam-epochs 10] [--lbfgs-epochs 2]
        [--out bench/results/NAME.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.common import machine_info  # noqa: E402


def _problem(n: int) -> Any:
    from fluxkern import problems

    p = problems.get("poisson")
    p.defaults = {**p.defaults, "n_interior": n}
    return p


def _timed_collectives() -> dict[str, float]:
    """Wraps Comm.sum and Comm.max to add their seconds and calls to the returned dict."""
    from fluxkern.distributed import Comm

    acc = {"seconds": 0.0, "calls": 0}
    for name in ("sum", "max"):
        orig = getattr(Comm, name)

        def timed(self, t, _orig=orig):  # noqa: ANN001, ANN202
            t0 = time.perf_counter()
            out = _orig(self, t)
            acc["seconds"] += time.perf_counter() - t0
            acc["calls"] += 1
            return out

        setattr(Comm, name, timed)
    return acc


def _run_worker(path: str) -> None:
    import fluxkern
    from fluxkern.training import Callback

    with open(path) as fh:
        spec = json.load(fh)
    torch.set_num_threads(1)
    acc = _timed_collectives() if spec["distributed"] else {"seconds": 0.0, "calls": 0}
    rows: list[dict[str, float]] = []

    class Rec(Callback):
        def on_epoch_end(self, trainer, record):  # noqa: ANN001, ANN201
            rows.append(
                {
                    "time_s": record.time_s,
                    "evals": record.evals,
                    "collective_s": acc["seconds"],
                    "loss": record.loss,
                }
            )

    t0 = time.perf_counter()
    fluxkern.solve(
        _problem(spec["n"]),
        callbacks=[Rec()],
        epochs=spec["epochs"],
        optimizer=spec["optimizer"],
        distributed=spec["distributed"],
        progress=False,
        out=None,
    )
    total = time.perf_counter() - t0
    bare = _bare_allreduce_s(_problem(spec["n"])) if spec["distributed"] else None
    if int(os.environ.get("RANK", "0")) == 0:
        with open(spec["result"], "w") as fh:
            json.dump({"total_s": total, "epochs": rows, "bare_allreduce_s": bare}, fh)


def _bare_allreduce_s(problem: Any, reps: int = 100) -> float:
    """Median seconds of one all-reduce of a gradient-sized buffer (P + 1 float64), the ranks
    in step (each call waits for all ranks, so the calls after the first are aligned)."""
    from fluxkern import distributed, solver

    model = solver.build_model(problem, "flux", torch.float64, torch.device("cpu"))
    size = sum(p.numel() for p in model.parameters()) + 1
    comm = distributed.init("cpu")
    buf = torch.ones(size, dtype=torch.float64)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        comm.sum(buf)
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(world: int, optimizer: str, epochs: int, n: int, tmp: str) -> dict[str, Any]:
    """world 0: the plain process; else that many gloo ranks."""
    result = os.path.join(tmp, f"r-{world}-{optimizer}.json")
    spec = {"n": n, "epochs": epochs, "optimizer": optimizer, "distributed": world > 0}
    spec["result"] = result
    path = os.path.join(tmp, f"s-{world}-{optimizer}.json")
    with open(path, "w") as fh:
        json.dump(spec, fh)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if world:
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE=str(world))
    cmd = [sys.executable, *(["-S"] if sys.flags.no_site else []), __file__, "--worker", path]
    procs = [
        subprocess.Popen(cmd, env={**env, **({"RANK": str(r)} if world else {})})
        for r in range(max(world, 1))
    ]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit(f"world {world} {optimizer}: a worker failed")
    with open(result) as fh:
        raw = json.load(fh)
    rows = raw["epochs"][1:] or raw["epochs"]  # the first epoch warms up
    eps = raw["epochs"]
    coll = [b["collective_s"] - a["collective_s"] for a, b in zip(eps, eps[1:], strict=False)]
    return {
        "world": world or "plain",
        "optimizer": optimizer,
        "epochs": epochs,
        "s_per_epoch": statistics.median(r["time_s"] for r in rows),
        "evals_per_epoch": statistics.median(r["evals"] for r in rows),
        "allreduce_s_per_epoch": statistics.median(coll) if coll and world else None,
        "bare_allreduce_s": raw["bare_allreduce_s"],
        "final_loss": raw["epochs"][-1]["loss"],
        "total_s": raw["total_s"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=65536, help="interior points (default 65536)")
    ap.add_argument("--adam-epochs", type=int, default=10)
    ap.add_argument("--lbfgs-epochs", type=int, default=2)
    ap.add_argument("--worlds", type=int, nargs="+", default=[0, 1, 2], help="0: plain")
    ap.add_argument("--repeats", type=int, default=2, help="rounds over all runs (default 2)")
    ap.add_argument("--out", help="JSON file of the results (default: print only)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _run_worker(args.worker)
        return
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.repeats):
            for optimizer, epochs in (("adam", args.adam_epochs), ("lbfgs", args.lbfgs_epochs)):
                for world in args.worlds:
                    row = {"round": rnd, **measure(world, optimizer, epochs, args.n, tmp)}
                    rows.append(row)
                    print(json.dumps(row))
    for r in rows:
        base = next(
            (
                b
                for b in rows
                if (b["round"], b["optimizer"], b["world"]) == (r["round"], r["optimizer"], 1)
            ),
            None,
        )
        if base:
            r["speedup_vs_1_rank"] = base["s_per_epoch"] / r["s_per_epoch"]
    info = machine_info()
    info["torch_threads_per_rank"] = 1
    out = {
        "benchmark": "distributed scaling",
        "problem": f"poisson, {args.n} interior + 256 boundary points, width 20, depth 3, float64",
        "rows": rows,
        "machine": info,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    print(f"load average before {load_before}, after {out['load_average_after']}")
    print(
        "| round | optimizer | ranks | s/epoch | evals/epoch | in all-reduces s/epoch | "
        "bare all-reduce ms | 1 rank / this |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ar, bare = r["allreduce_s_per_epoch"], r["bare_allreduce_s"]
        print(
            f"| {r['round']} | {r['optimizer']} | {r['world']} | {r['s_per_epoch']:.3f} | "
            f"{r['evals_per_epoch']:g} | {'-' if ar is None else f'{ar:.4f}'} | "
            f"{'-' if bare is None else f'{1e3 * bare:.3f}'} | "
            f"{r.get('speedup_vs_1_rank', float('nan')):.2f} |"
        )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
