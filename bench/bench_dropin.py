"""Drop-in workload: fluxkern.jet in the user's own loss, against plain autograd and torch.func.

The user keeps their loss code and calls ``fluxkern.jet(net, x)`` for the values and input
Jacobian, then backpropagates: here loss = sum y^2 + sum J^2, then the parameter gradient.
Contenders, on the same network (tanh), points and dtype:
  fluxkern.jet            the default CPU kernel (the per-tile kernels up to width 128)
  fluxkern.jet [gemm]     the BLAS-GEMM path (set_cpu_kernel("gemm")), for the automatic choice
  autograd.grad           plain PyTorch: y = net(x), one autograd.grad(create_graph=True) per
                          output for J, then the loss's gradient
  torch.func              y = net(x), J = vmap(jacfwd(net)), then the loss's gradient
Sets: the issue's table (issue 30), every benchmark problem's network at its own point count (all
its distinct point sets through one jet), and N 8192 / 65536 at widths 20 / 64 / 128; each in
float64 and float32, one and two threads. Before timing, every contender's loss and last-layer
gradient are checked against plain autograd (float64: 1e-10 relative, float32: 1e-4 for the loss,
1e-3 for the gradient). The contenders then run interleaved, one step each per round, after
warm-up; each gets the median of its rounds. GFLOP/s use the design notes' count (DESIGN.md
section 5; the per-tile path recomputes the forward, one pass more than counted) against a
large GEMM through torch measured in the same run at the same dtype and thread count. Every row
carries the load average when it was measured; the header gives machine and versions. Besides
the wall-clock medians, the medians of process CPU time per step (both threads summed with two)
are reported: on a shared machine they show the work done apart from the time spent waiting.

Usage: python bench/bench_dropin.py [--sets issue problems large] [--dtypes float64 float32]
       [--threads 1 2] [--min-time 1.0] [--min-rounds 7] [--quick] [--json PATH]
       python -m bench --workloads dropin
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.func import functional_call, jacfwd, vmap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import fluxkern  # noqa: E402

SETS = ("issue", "problems", "large")
# (dtype, N, width, threads) of issue 30's table: 2 inputs, 4 tanh hidden layers, 3 outputs.
ISSUE = [
    ("float64", 3584, 50, 1),
    ("float64", 2048, 20, 1),
    ("float32", 3584, 50, 1),
    ("float32", 2048, 20, 1),
    ("float32", 8192, 64, 2),
]
LARGE_N, LARGE_W = (8192, 65536), (20, 64, 128)


def _loss(y: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
    return (y * y).sum() + (jac * jac).sum()


def contenders(net: fluxkern.MLP, x: torch.Tensor) -> dict[str, Callable[[], tuple[Any, Any]]]:
    """Step functions returning (loss, gradient of the last layer's weight)."""
    params = list(net.parameters())
    seq = net.to_sequential()  # the same function, normalisation folded into layer 1
    seq_params = list(seq.parameters())
    m = net.out_features

    def jet_step(kernel: str) -> Callable[[], tuple[Any, Any]]:
        def step() -> tuple[Any, Any]:
            with fluxkern.cpu_kernel(kernel):
                y, jac = fluxkern.jet(net, x)
                loss = _loss(y, jac)
                return loss, torch.autograd.grad(loss, params)[-2]

        return step

    def autograd_step() -> tuple[Any, Any]:
        xr = x.detach().requires_grad_(True)
        y = seq(xr)
        cols = [torch.autograd.grad(y[:, k].sum(), xr, create_graph=True)[0] for k in range(m)]
        loss = _loss(y, torch.stack(cols, dim=1))  # J [N, m, d]
        return loss, torch.autograd.grad(loss, seq_params)[-2]

    named = dict(seq.named_parameters())

    def func_step() -> tuple[Any, Any]:
        def one(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
            return functional_call(seq, p, (xi,))

        y = functional_call(seq, named, (x,))
        jac = vmap(jacfwd(one, argnums=1), in_dims=(None, 0))(named, x)  # [N, m, d]
        loss = _loss(y, jac)
        return loss, torch.autograd.grad(loss, list(named.values()))[-2]

    return {
        "fluxkern.jet": jet_step("tile"),
        "fluxkern.jet [gemm]": jet_step("gemm"),
        "autograd.grad": autograd_step,
        "torch.func": func_step,
    }


def check(steps: dict[str, Callable[[], tuple[Any, Any]]], dtype: torch.dtype) -> None:
    """Every contender's loss and last-layer gradient against plain autograd's."""
    ref_loss, ref_grad = steps["autograd.grad"]()
    tol_l, tol_g = (1e-10, 1e-10) if dtype == torch.float64 else (1e-4, 1e-3)
    for name, step in steps.items():
        loss, grad = step()
        rel_l = abs(loss.item() - ref_loss.item()) / abs(ref_loss.item())
        rel_g = ((grad - ref_grad).norm() / ref_grad.norm()).item()
        if rel_l > tol_l or rel_g > tol_g:
            raise SystemExit(
                f"{name}: loss {loss.item()!r} vs {ref_loss.item()!r} (rel {rel_l:.1e}), "
                f"gradient rel {rel_g:.1e}: results differ, not timing"
            )


def interleaved(
    steps: dict[str, Callable[[], Any]], min_time: float, min_rounds: int, max_rounds: int = 200
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and process-CPU seconds per step of each contender, one step each per round, after
    one warm-up round. (CPU time counts what the process ran, whatever else shared the cores.)"""
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    cpu: dict[str, list[float]] = {k: [] for k in steps}
    t_end = time.perf_counter() + min_time * len(steps)
    while True:
        for name, step in steps.items():
            c0, t0 = time.process_time(), time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
        rounds = len(times["autograd.grad"])
        if rounds >= max_rounds or (rounds >= min_rounds and time.perf_counter() >= t_end):
            return times, cpu


def make_cases(sets: list[str], quick: bool) -> list[dict[str, Any]]:
    """(set, label, net factory args, N) per case; dtype and threads are applied later."""
    cases: list[dict[str, Any]] = []
    if "issue" in sets:
        for dname, n, w, threads in ISSUE[:2] if quick else ISSUE:
            cases.append({"set": "issue", "net": (2, 3, w, 4), "N": n, "only": (dname, threads)})
    if "problems" in sets:
        for name in ["poisson"] if quick else fluxkern.problems.names():
            p = fluxkern.problems.get(name)
            cases.append({"set": "problems", "problem": name, "net": None, "N": None, "p": p})
    if "large" in sets:
        for n in LARGE_N[:1] if quick else LARGE_N:
            for w in LARGE_W[:2] if quick else LARGE_W:
                cases.append({"set": "large", "net": (2, 3, w, 4), "N": n})
    return cases


def _problem_net_and_points(name: str, dtype: torch.dtype) -> tuple[fluxkern.MLP, torch.Tensor]:
    """The problem's network and all its distinct point sets, as fluxkern.solve builds them."""
    import problem_steps as ps

    case = ps.make_case(name, dtype)
    return case.model, torch.cat(case.point_sets).contiguous()


def run_case(case: dict[str, Any], dname: str, threads: int, peak: float, args) -> list[dict]:
    dtype = getattr(torch, dname)
    torch.set_num_threads(threads)
    if case["set"] == "problems":
        net, x = _problem_net_and_points(case["problem"], dtype)
        d, m = net.in_features, net.out_features
        w, depth = net.layers[0].out_features, len(net.layers) - 1
        label = f"{case['problem']} ({d}-{w}x{depth}-{m})"
    else:
        d, m, w, depth = case["net"]
        torch.manual_seed(0)
        net = fluxkern.MLP(
            d, m, w, depth, "tanh", [0.5] * d, [0.29] * d, dtype=dtype
        )  # shift, scale
        x = torch.rand(case["N"], d, dtype=dtype)
        label = f"{d}-{w}x{depth}-{m}"
    n = x.shape[0]
    steps = contenders(net, x)
    check(steps, dtype)
    load = os.getloadavg()[0]
    times, cpu = interleaved(steps, args.min_time, args.min_rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    flops = common.jet_step_flops(d, w, depth, m) * n
    fk = med["fluxkern.jet"]
    rows = []
    for name, t in med.items():
        gflops = flops / t / 1e9
        rows.append(
            {
                "set": case["set"],
                "net": label,
                "dtype": dname,
                "threads": threads,
                "N": n,
                "contender": name,
                "ms": round(t * 1e3, 3),
                "cpu ms": round(med_cpu[name] * 1e3, 3),
                "rounds": len(times[name]),
                "x vs fluxkern.jet": round(t / fk, 2),
                "GFLOP/s": round(gflops, 1),
                "of GEMM": f"{100 * gflops / peak:.0f}%",
                "GEMM GFLOP/s": round(peak, 1),
                "load": f"{load:.2f}-{os.getloadavg()[0]:.2f}",
            }
        )
    plain = med["autograd.grad"] / fk
    print(
        f" {case['set']:8s} {label:28s} {dname} {threads}t N={n:6d}: fluxkern {fk * 1e3:8.2f} ms, "
        f"plain {med['autograd.grad'] * 1e3:8.2f} ms ({plain:.2f}x; CPU time "
        f"{med_cpu['autograd.grad'] / max(med_cpu['fluxkern.jet'], 1e-9):.2f}x), torch.func "
        f"{med['torch.func'] * 1e3:8.2f} ms, gemm path {med['fluxkern.jet [gemm]'] * 1e3:8.2f} ms "
        f"[load {rows[0]['load']}]",
        flush=True,
    )
    return rows


def run(args, save: Callable[[Any], None] | None = None) -> list[dict[str, Any]]:
    """All rows of the drop-in workload (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    peaks: dict[tuple[str, int], float] = {}
    threads_before = torch.get_num_threads()
    try:
        for threads in args.threads:
            for dname in args.dtypes:
                torch.set_num_threads(threads)
                peaks[(dname, threads)] = common.gemm_peak_gflops(getattr(torch, dname))
                print(
                    f" {dname}, {threads} thread(s): large GEMM "
                    f"{peaks[(dname, threads)]:.1f} GFLOP/s (load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
                for case in make_cases(args.sets, args.quick):
                    if "only" in case and case["only"] != (dname, threads):
                        continue
                    rows += run_case(case, dname, threads, peaks[(dname, threads)], args)
                    if save is not None:
                        save(rows)
    finally:
        torch.set_num_threads(threads_before)
    return rows


def summary(rows: list[dict[str, Any]]) -> str:
    """One line per case: fluxkern.jet's time and its speed-up over each other contender."""
    out = []
    keys = sorted({(r["set"], r["net"], r["dtype"], r["threads"], r["N"]) for r in rows}, key=str)
    for key in keys:
        case = {
            r["contender"]: r
            for r in rows
            if (r["set"], r["net"], r["dtype"], r["threads"], r["N"]) == key
        }
        fk = case["fluxkern.jet"]
        out.append(
            {
                "set": key[0],
                "net": key[1],
                "dtype": key[2],
                "threads": key[3],
                "N": key[4],
                "fluxkern.jet ms": fk["ms"],
                "autograd.grad ms": case["autograd.grad"]["ms"],
                "plain / fluxkern": f"{case['autograd.grad']['ms'] / fk['ms']:.2f}x",
                "plain / fluxkern, CPU time": (
                    f"{case['autograd.grad']['cpu ms'] / fk['cpu ms']:.2f}x" if fk["cpu ms"] else ""
                ),
                "torch.func / fluxkern": f"{case['torch.func']['ms'] / fk['ms']:.2f}x",
                "gemm path / fluxkern": f"{case['fluxkern.jet [gemm]']['ms'] / fk['ms']:.2f}x",
                "fluxkern GFLOP/s (of GEMM)": f"{fk['GFLOP/s']} ({fk['of GEMM']})",
                "load": fk["load"],
            }
        )
    return common.print_table(out, list(out[0].keys())) if out else ""


def header() -> str:
    info = common.machine_info()
    try:
        up = subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        up = f"load average {os.getloadavg()}"
    return (
        f"machine: {info['cpu']} ({info['cores']} cores); python {info['python']}, torch "
        f"{info['torch']}, fluxkern {info['fluxkern']}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; "
        f"uptime: {up}"
    )


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    p.add_argument(
        "--dtypes", nargs="+", choices=["float64", "float32"], default=["float64", "float32"]
    )
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per contender and case")
    p.add_argument("--min-rounds", type=int, default=7, help="steps per contender at least")
    p.add_argument("--quick", action="store_true", help="a few small cases (smoke test)")
    p.add_argument("--json", default=None, help="also write the rows and machine info here")
    args = p.parse_args(argv)
    if args.quick:
        args.min_time, args.min_rounds = min(args.min_time, 0.1), min(args.min_rounds, 3)
    return args


def main(argv=None) -> int:
    args = parse(argv)
    print(header(), flush=True)
    rows = run(args)
    print(header())
    print(summary(rows))
    if args.json:
        common.dump_json(args.json, {"machine": common.machine_info(), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
