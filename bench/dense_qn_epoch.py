"""The dense quasi-Newton step on H's upper triangle against the full-matrix step it replaced:
epoch time of the problems whose defaults run ssbroyden, and the matrix work alone, one process,
interleaved (docs/optimizers.md).

Two trainers of the same problem, defaults and seed run alternately, one epoch each per round:
one with fluxkern.optim.quasi_newton as it is (sym_matvec, sym_rank2_update_ and the update
deferred into the next product, sym_rank2_update_matvec_, on the upper triangle), one with those
three swapped for the full-matrix torch calls the optimizer made before (H @ g, H.addmm_(U, W),
and the two in turn; on a full symmetric H that starts as the identity, so that run does the old
code's passes). The trajectories part in the last bits, so the evaluations per epoch can differ: the
table gives both epoch times and the time per evaluation. Medians over the timed rounds after
--warm rounds; the matrix kernels alone are timed at the problem's parameter count as well.

    python bench/dense_qn_epoch.py [--problems helmholtz composite_heat cavity stokes]
        [--ssbroyden-from-start stokes] [--rounds 12] [--warm 3] [--threads 1]
    python bench/dense_qn_epoch.py --kernels 1362 2043 4000 8004 [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fluxkern.optim.quasi_newton as qn  # noqa: E402
from common import defaults_trainer, machine_info  # noqa: E402
from fluxkern import ops  # noqa: E402

NEW = (ops.sym_matvec, ops.sym_rank2_update_, ops.sym_rank2_update_matvec_)


def _full_matvec(h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return h @ x


def _full_rank2(h: torch.Tensor, u: torch.Tensor, w: torch.Tensor) -> None:
    h.addmm_(u, w)


def _full_rank2_matvec(h: torch.Tensor, u: torch.Tensor, w: torch.Tensor, x: torch.Tensor):
    h.addmm_(u, w)
    return h @ x


OLD = (_full_matvec, _full_rank2, _full_rank2_matvec)


def _use(fns: tuple[Any, Any, Any]) -> None:
    qn.sym_matvec, qn.sym_rank2_update_, qn.sym_rank2_update_matvec_ = fns


def _epoch(trainer: Any, fns: tuple[Any, Any, Any]) -> tuple[float, int]:
    _use(fns)
    t = time.perf_counter()
    rec = trainer.step()
    return time.perf_counter() - t, int(getattr(rec, "evals", 0) or trainer._evals)


def _kernels(n: int, reps: int = 10) -> dict[str, float]:
    """ms per call of the product and the update, full against upper triangle, at P = n."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    full = (a + a.T) / n
    upper = torch.triu(full).contiguous()
    x = torch.randn(n, dtype=torch.float64)
    u, w = torch.randn(n, 2, dtype=torch.float64), torch.randn(2, n, dtype=torch.float64) * 1e-9
    assert float((ops.sym_matvec(upper, x) - full @ x).abs().max()) < 1e-12
    out = {}
    for name, fn, mat in (
        ("full_matvec", lambda m: m @ x, full),
        ("upper_matvec", lambda m: ops.sym_matvec(m, x), upper),
        ("full_update", lambda m: m.addmm_(u, w), full),
        ("upper_update", lambda m: ops.sym_rank2_update_(m, u, w), upper),
        ("upper_both", lambda m: ops.sym_rank2_update_matvec_(m, u, w, x), upper),
    ):
        for _ in range(3):
            fn(mat)
        t = time.perf_counter()
        for _ in range(reps):
            fn(mat)
        out[name] = (time.perf_counter() - t) / reps * 1e3
    return out


def run(name: str, rounds: int, warm: int, from_start: bool) -> dict[str, Any]:
    import fluxkern.problems as problems
    from fluxkern.optim.by_name import SCALE_FREE

    problem = problems.get(name)
    options: dict[str, Any] = {}
    if from_start:  # ssbroyden from epoch 0 (stokes switches to it only at epoch 1200)
        options = {"optimizer": "ssbroyden", "optimizer_options": dict(SCALE_FREE)}
        options |= {"then_optimizer": None, "switch_epoch": None}
    new_t = defaults_trainer(problem, seed=0, epochs=rounds + warm, **options)
    old_t = defaults_trainer(problem, seed=0, epochs=rounds + warm, **options)
    n = sum(p.numel() for p in new_t.params)
    rows: dict[str, list[tuple[float, int]]] = {"new": [], "old": []}
    for r in range(rounds + warm):
        order = (("old", old_t, OLD), ("new", new_t, NEW))
        for key, tr, fns in order if r % 2 else order[::-1]:
            s, ev = _epoch(tr, fns)
            if r >= warm:
                rows[key].append((s, ev))
    _use(NEW)
    res: dict[str, Any] = {"problem": name, "parameters": n}
    for key, vals in rows.items():
        res[f"{key}_epoch_ms"] = statistics.median(v[0] for v in vals) * 1e3
        res[f"{key}_ms_per_eval"] = statistics.median(v[0] / max(v[1], 1) for v in vals) * 1e3
        res[f"{key}_evals"] = statistics.median(v[1] for v in vals)
    res["kernels_ms"] = _kernels(n)
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", nargs="+", default=["helmholtz", "composite_heat"])
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--warm", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--kernels",
        nargs="*",
        type=int,
        default=[],
        metavar="P",
        help="only time the product and the update at these parameter counts",
    )
    ap.add_argument(
        "--ssbroyden-from-start",
        nargs="*",
        default=[],
        metavar="NAME",
        help="problems run with ssbroyden (scale-free tests) from the first epoch",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine_info()
    print(
        f"# {info['cpu']}, {info['cores']} cores, {args.threads} torch thread(s); python "
        f"{info['python']}, torch {info['torch']}, fluxkern {info['fluxkern']}; load average "
        f"{os.getloadavg()[0]:.2f}"
    )
    if args.kernels:
        head = "| P | full H @ x ms (GB/s) | sym_matvec | full addmm_ (rank 2) | sym_rank2_update_"
        print(head + " | sym_rank2_update_matvec_ |")
        print("|---|---|---|---|---|---|")
        for n in args.kernels:
            k = _kernels(n)
            gb = 8.0 * n * n / 1e9  # one pass over the full matrix
            rate = {  # GB/s of the values each touches (the update reads and writes them)
                "full_matvec": gb,
                "upper_matvec": gb / 2,
                "full_update": 2 * gb,
                "upper_update": gb,
                "upper_both": gb,
            }
            cells = [f"{k[c]:.2f} ({rate[c] / k[c] * 1e3:.1f})" for c in rate]
            print(f"| {n} | " + " | ".join(cells) + " |", flush=True)
        print(f"# load average at the end {os.getloadavg()[0]:.2f}")
        return
    print(
        "| problem | P | old epoch ms (evals) | new epoch ms (evals) | old / new per epoch | "
        "old / new per eval | product full / upper ms | update full / upper ms | "
        "both in one pass ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.problems:
        r = run(name, args.rounds, args.warm, name in args.ssbroyden_from_start)
        k = r["kernels_ms"]
        print(
            f"| {name} | {r['parameters']} | {r['old_epoch_ms']:.1f} ({r['old_evals']:g}) | "
            f"{r['new_epoch_ms']:.1f} ({r['new_evals']:g}) | "
            f"{r['old_epoch_ms'] / r['new_epoch_ms']:.2f}x | "
            f"{r['old_ms_per_eval'] / r['new_ms_per_eval']:.2f}x | "
            f"{k['full_matvec']:.3f} / {k['upper_matvec']:.3f} | "
            f"{k['full_update']:.3f} / {k['upper_update']:.3f} | {k['upper_both']:.3f} |",
            flush=True,
        )
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
