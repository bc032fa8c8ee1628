"""Side-by-side benchmarks: fluxkern against what users would pick instead, in one run.

Contenders (same network, same points, same dtype): fluxkern with every backend available, the
flux-form loss written by hand with torch.autograd.grad(create_graph=True), with torch.func
(vmap of jacfwd), torch.compile of both, the second-order PINN as users write it (and compiled),
and DeepXDE (pytorch backend) in PINN form (dde.grad.hessian) and flux form (dde.grad.jacobian).

Workloads:
  jet       the jet alone (values + input Jacobian, forward + parameter gradient)
  dropin    fluxkern.jet in the user's own loss (sum y^2 + sum J^2, then backward) against plain
            autograd.grad and torch.func: issue 30's table, the problems' nets at their sizes, N
            8192 / 65536 at widths 20-128; --dtypes, --threads (default 1 2), interleaved A/B
            (bench_dropin.py)
  step      one training step (loss, backward, Adam) of the poisson problem
  scaling   the step over N = 1024 .. 1048576 and widths 32 .. 256 (a contender stops growing N
            once one step takes longer than --step-cap seconds or would need too much memory)
  tta       time to accuracy: until rel. L2 of u reaches 1e-3 on poisson and 4.2e-3 (the
            reference's error) on composite_heat
  problems  every benchmark problem (flux form) at its own sizes, as fluxkern.solve builds it:
            one loss + gradient evaluation and one L-BFGS epoch (solver settings, plus the dual
            update) for fluxkern fused, its pure-torch twin and plain PyTorch autograd.grad;
            float64 and float32, 1 and 2 threads (problem_steps.py)
  users     the PDEs users bring (examples/*.py): fluxkern.solve's defaults against DeepXDE's
            recipe at equal wall time, one thread each, rel. L2 at 60 s, 300 s and the end
            (bench/users.py; only when named: --workloads users [--users-budget S])
  inverse   unknown constants and a field from noisy data (examples/inverse_*.py): fluxkern
            against DeepXDE's inverse recipe (bench/inverse.py; only when named: --workloads
            inverse [--inverse-budget S] [--inverse-seeds 0 1 2])

Every measurement prints the machine, versions and the measured GEMM rate; the losses of all
contenders of one form are checked to agree before any timing. Results: <out>/<machine>-<date>
.json (written after every workload, so nothing is lost when a later one fails), .md (tables) and
-steps.png, -scaling.png, -tta.png. A later run on the same machine and day adds its workloads to
that file (a workload run again replaces its earlier results); each keeps its own options, time
and load average.

Usage: python -m bench [--workloads jet step scaling tta problems] [--quick] [--out bench/results]
       python -m bench --workloads problems [--problems NAME ...] [--dtypes float64 float32]
                       [--threads 1 2] [--epoch-reps 5] [--min-time 1] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

import bench_dropin
import common
import fluxkern as fk
import poisson_case as case
import problem_steps as ps
import report
import torch_steps as ts
from isolated import IsolatedContender

WORKLOADS = ("jet", "dropin", "step", "scaling", "tta", "problems", "users", "inverse")


def machine_slug(info: dict[str, Any]) -> str:
    """A file-name-safe machine label, e.g. "cpu-amd-epyc-2c"."""
    words = [w for w in info["cpu"].lower().replace("(r)", "").replace("(tm)", "").split() if w]
    keep = [w for w in words if w.isalnum() and w not in ("processor", "cpu", "core", "with")][:3]
    label = "-".join(["cpu", *keep, f"{info['cores']}c"])
    if "gpu" in info:
        label = "gpu-" + "-".join(info["gpu"].lower().split()[1:3])
    return label


def _git(root: str, *args: str) -> str:
    """stdout of `git -C root args` ("" when git fails)."""
    try:
        proc = subprocess.run(
            ["git", "-C", root, *args], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout if proc.returncode == 0 else ""


def fluxkern_source() -> dict[str, Any]:
    """Where fluxkern was imported from and the git state there (commit, modified files), so
    that numbers measured on a work-in-progress build say so."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(fk.__file__))))
    status = _git(root, "status", "--porcelain")  # "XY path" lines, "??" untracked
    return {
        "path": root,
        "commit": _git(root, "rev-parse", "--short", "HEAD").strip() or None,
        "modified": [ln[3:] for ln in status.splitlines() if len(ln) > 3],
    }


def deepxde_version() -> str | None:
    try:
        import deepxde_steps as dx

        return dx.import_deepxde().__version__
    except ImportError:
        return None


def _tol(dtype: torch.dtype) -> float:
    return 1e-4 if dtype == torch.float32 else 1e-9


def check_losses(contenders: list[ts.Contender], dtype: torch.dtype) -> dict[str, float]:
    """First loss of every contender; raises SystemExit when one disagrees with its group's
    first contender (beyond 1e-4 relative in float32, 1e-9 in float64)."""
    values: dict[str, float] = {}
    ref: dict[str, tuple[str, float]] = {}
    for c in contenders:
        val = c.first_loss()
        if val is None:
            print(f"  {c.group} / {c.name}: does not run: {c.error}", flush=True)
            continue
        values[c.name + " | " + c.group] = val
        first = ref.setdefault(c.group, (c.name, val))
        rel = abs(val - first[1]) / abs(first[1])
        print(f"  {c.group} / {c.name}: loss {val:.8g} (rel. diff {rel:.1e})", flush=True)
        if rel > _tol(dtype):
            raise SystemExit(f"{c.name}: loss {val} differs from {first[0]}'s {first[1]}")
    return values


def time_rows(
    contenders: list[ts.Contender],
    base: str,
    flops: float,
    peak: float,
    meta: dict[str, Any],
    min_time: float,
) -> list[dict[str, Any]]:
    """Times every contender that ran; one row each (failures are rows too)."""
    rows: list[dict[str, Any]] = []
    times: dict[str, float] = {}
    for c in contenders:
        row = {**meta, "contender": c.name, "form": c.group}
        if c.error is not None:
            rows.append(row | {"ms": None, "error": c.error})
            continue
        try:
            t = c.time_step("cpu", min_time)
        except Exception as exc:  # noqa: BLE001 -- a failure is a result
            rows.append(row | {"ms": None, "error": ts._first_line(exc)})
            continue
        times[c.name] = t
        row |= {"ms": round(t * 1e3, 3), "first_call_s": round(c.first_call_s or 0.0, 2)}
        if c.group != "PINN":
            gflops = flops / t / 1e9
            row |= {"GFLOP/s": round(gflops, 1), "of GEMM peak": f"{100 * gflops / peak:.0f}%"}
        rows.append(row)
        print(f"  {c.name} ({c.group}): {t * 1e3:.2f} ms", flush=True)
    if base in times:
        for row in rows:
            if row.get("ms"):
                row["x fluxkern"] = round(row["ms"] / (times[base] * 1e3), 2)
    return rows


def deepxde_contenders(
    width: int, depth: int, pts: case.PoissonPoints, dtype: torch.dtype, forms=("pinn", "flux")
) -> tuple[list[ts.Contender], str | None]:
    """DeepXDE PINN and flux contenders (empty, with the reason, when DeepXDE is missing)."""
    try:
        import deepxde_steps as dx

        dde = dx.import_deepxde()
    except ImportError as exc:
        return [], f"DeepXDE not available: {exc}"
    dcase = dx.poisson_for_deepxde(pts)
    out = []
    for form in forms:
        m = 3 if form == "flux" else 1
        seq = case.make_net(width, depth, m, dtype).to_sequential()
        model = dx.build_model(dde, dcase, form, seq, dtype)
        how = "dde.grad.jacobian" if form == "flux" else "dde.grad.hessian"
        group = "flux penalty" if form == "flux" else "PINN"
        out.append(dx.DeepXDEContender(f"DeepXDE {form} ({how})", group, model, dde))
    return out, None


# --------------------------------------------------------------------------- workloads
def run_jet(args, peak: float) -> list[dict[str, Any]]:
    import bench_jet

    dtype, n, w = torch.float32, args.n, 64
    net = case.make_net(w, 4, 3, dtype)
    x = case.make_points(n, 0, dtype).xi

    def measured(step):  # in-process contender: (first loss, first call s, median step s)
        def run() -> tuple[float, float, float]:
            t0 = time.perf_counter()
            val = float(step()[0].detach())
            first = time.perf_counter() - t0
            return val, first, common.time_call(step, min_time=args.min_time)

        return run

    steps = bench_jet.make_contenders(net, x)
    runs = {name: measured(step) for name, step in steps.items()}
    if args.compile:
        spec = {"n": n, "width": w, "depth": 4, "min_time": args.min_time}
        iso = IsolatedContender("jet", "torch.compile(torch.func)", "jet", spec)

        def isolated() -> tuple[float, float, float]:
            val = iso.first_loss()
            if val is None:
                raise RuntimeError(iso.error)
            return val, iso.first_call_s or 0.0, iso.time_step("cpu", args.min_time)

        runs[iso.name] = isolated
    rows = []
    ref = float(steps["fluxkern[torch]"]()[0].detach())
    flops = common.jet_step_flops(2, w, 4, 3) * n
    t_base = None
    for name, run in runs.items():
        row: dict[str, Any] = {"workload": "jet", "N": n, "width": w, "dtype": "float32"}
        row["contender"] = name
        try:
            val, first, t = run()
        except RuntimeError as exc:
            rows.append(row | {"ms": None, "error": ts._first_line(exc)})
            print(f"  jet {name}: does not run: {rows[-1]['error']}", flush=True)
            continue
        if abs(val - ref) > _tol(dtype) * abs(ref):
            raise SystemExit(f"jet: {name} gives {val}, fluxkern[torch] {ref}")
        gflops = flops / t / 1e9
        row |= {"ms": round(t * 1e3, 3), "first_call_s": round(first, 2)}
        row |= {"GFLOP/s": round(gflops, 1), "of GEMM peak": f"{100 * gflops / peak:.0f}%"}
        rows.append(row)
        if name == "fluxkern[cpu]":
            t_base = t
        print(f"  jet {name}: {t * 1e3:.2f} ms", flush=True)
    for row in rows:
        if row.get("ms") and t_base:
            row["x fluxkern"] = round(row["ms"] / (t_base * 1e3), 2)
    return rows


def run_step(args, peak: float) -> list[dict[str, Any]]:
    dtype, n, nb, w, depth = torch.float32, args.n, max(64, args.n // 16), 64, 4
    pts = case.make_points(n, nb, dtype)
    cons = ts.flux_contenders(w, depth, pts, dtype, "cpu", False)
    cons.append(ts.penalty_contender(w, depth, pts, dtype, "cpu"))
    cons += ts.pinn_contenders(w, depth, pts, dtype, "cpu", False)
    if args.compile:  # each in its own process (isolated.py)
        spec = {"n": n, "nb": nb, "width": w, "depth": depth, "min_time": args.min_time}
        for name, group in [
            ("torch.compile(autograd.grad)", "flux AL"),
            ("torch.compile(torch.func)", "flux AL"),
            ("torch.compile(autograd.grad)", "PINN"),
        ]:
            cons.append(IsolatedContender("step", name, group, spec))
    dxc, why = deepxde_contenders(w, depth, pts, dtype)
    cons += dxc
    check_losses(cons, dtype)
    meta = {"workload": "step", "N": n, "N_boundary": nb, "width": w, "dtype": "float32"}
    flops = common.jet_step_flops(2, w, depth, 3) * (n + nb)
    rows = time_rows(cons, "fluxkern [cpu, fused]", flops, peak, meta, args.min_time)
    if why:
        rows.append(meta | {"contender": "DeepXDE", "ms": None, "error": why})
    return rows


def run_scaling(args, peak: float, save) -> list[dict[str, Any]]:
    dtype, depth = torch.float32, 4
    rows: list[dict[str, Any]] = []
    for w in args.widths:
        stopped: dict[str, str] = {}
        for n in args.scaling_n:
            nb = max(64, n // 16)
            meta = {"workload": "scaling", "N": n, "width": w, "dtype": "float32"}
            names = [
                ("fluxkern [cpu, fused]", "flux AL"),
                ("PyTorch autograd.grad", "flux AL"),
                ("PyTorch autograd.grad", "PINN"),
                ("DeepXDE pinn (dde.grad.hessian)", "PINN"),
            ]
            # saved activations, about (2d+3) [N, W] buffers per layer, and a few times that in
            # autograd's graphs: sizes that would not fit comfortably are not even built
            need_gb = 4 * 7 * depth * (n + nb) * w * 4 / 1e9
            if need_gb > args.max_gb:
                why = f"skipped: needs about {need_gb:.0f} GB"
                rows += [
                    meta | {"contender": c, "form": g, "ms": None, "error": why} for c, g in names
                ]
                continue
            pts = case.make_points(n, nb, dtype)
            cons = ts.flux_contenders(w, depth, pts, dtype, "cpu", False, twin=False)
            cons = [c for c in cons if "fused" in c.name or c.name == "PyTorch autograd.grad"]
            cons += ts.pinn_contenders(w, depth, pts, dtype, "cpu", False)
            cons += deepxde_contenders(w, depth, pts, dtype, forms=("pinn",))[0]
            todo = []
            for c in cons:
                if c.name in stopped:
                    rows.append(meta | {"contender": c.name, "form": c.group, "ms": None})
                    rows[-1]["error"] = stopped[c.name]
                else:
                    todo.append(c)
            if not todo:
                continue
            print(f" width {w}, N {n}:", flush=True)
            check_losses(todo, dtype)
            flops = common.jet_step_flops(2, w, depth, 3) * (n + nb)
            min_time = min(args.min_time, 0.5)
            new = time_rows(todo, "fluxkern [cpu, fused]", flops, peak, meta, min_time)
            for row in new:
                if row.get("ms") and row["ms"] > args.step_cap * 1e3:
                    stopped[row["contender"]] = (
                        f"not run: N {n} took {row['ms'] / 1e3:.1f} s per step"
                    )
            rows += new
            save(rows)  # a crash later (out of memory) keeps what was measured
            del cons, todo, pts
    return rows


def run_tta(args, save) -> list[dict[str, Any]]:
    import accuracy

    out = []
    plan = [("poisson", 1e-3, args.tta_cap[0]), ("composite_heat", 4.2e-3, args.tta_cap[1])]
    for name, target, cap in plan:
        if cap <= 0:
            continue
        print(f" {name}: target rel. L2 of u {target:g}, cap {cap:.0f} s", flush=True)
        traces = [accuracy.fluxkern_time_to_accuracy(name, target, cap)]
        # DeepXDE: L-BFGS in both forms (what fluxkern and the reference runs use), and Adam
        # (DeepXDE's documented default) for the PINN form of poisson.
        runs = [("pinn", "L-BFGS"), ("flux", "L-BFGS")]
        if name == "poisson":
            runs.insert(1, ("pinn", "adam"))
        for form, opt in runs:
            save(out + [t.as_dict() for t in traces])
            traces.append(accuracy.deepxde_time_to_accuracy(name, form, opt, target, cap))
        out += [t.as_dict() for t in traces]
        save(out)
    return out


def run_inverse(args: argparse.Namespace) -> Any:
    """The inverse workload (bench/inverse.py); writes its own inverse-DATE.json/.md too."""
    import inverse

    budgets = ["--budget", "5", "--deepxde-budget", "5"] if args.quick else [
        "--budget", str(args.inverse_budget)]  # fmt: skip
    seeds = [str(s) for s in args.inverse_seeds]
    return inverse.main([*budgets, "--seeds", *seeds, "--out", args.out], summary=True)


def run_users(args: argparse.Namespace) -> dict[str, Any]:
    """The users workload (bench/users.py): the examples/ problems, fluxkern.solve against
    DeepXDE's recipe at equal wall time, one thread each. Writes its own users-DATE.json/.md
    (--quick: in a temporary folder) and returns that run's summary."""
    import users

    argv = ["--problems", *args.users_problems] if args.users_problems else []
    if args.quick:
        argv.append("--quick")
    else:
        argv += ["--budget", str(args.users_budget), "--out", args.out]
    return users.main(argv, summary=True)


def run_problems(args: argparse.Namespace, save: Callable[[Any], None]) -> list[dict[str, Any]]:
    """The problems workload: per (threads, dtype, problem) the correctness check, then eval and
    epoch times of fluxkern fused, the twin and plain PyTorch (problem_steps.py).

    Args:
        args: The parsed options (problems, dtypes, problem_threads, min_time, epoch_reps,
            warm_epochs).
        save: Called with the rows so far after every problem (a later failure keeps them).

    Returns:
        One row per (threads, dtype, problem, contender).
    """
    rows: list[dict[str, Any]] = []
    threads_before = torch.get_num_threads()
    peaks: dict[tuple[int, str], float] = {}
    try:
        for threads in args.problem_threads:
            torch.set_num_threads(threads)
            for dname in args.dtypes:
                dtype = getattr(torch, dname)
                key = (threads, dname)
                if key not in peaks:
                    peaks[key] = common.gemm_peak_gflops(dtype, args.device)
                    print(
                        f" {dname}, {threads} thread(s): large-GEMM peak {peaks[key]:.1f} GFLOP/s",
                        flush=True,
                    )
                for name in args.problems:
                    rows += problem_rows(name, dtype, threads, peaks[key], args)
                    save(rows)
    finally:
        torch.set_num_threads(threads_before)
    return rows


def problem_rows(
    name: str, dtype: torch.dtype, threads: int, peak: float, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Rows of one problem at one dtype and the current thread count (one per contender).

    Args:
        name: The problem.
        dtype: torch.float64 or torch.float32.
        threads: The torch thread count set by the caller (recorded in the rows).
        peak: The 2048^2 GEMM rate at this dtype and thread count, GFLOP/s.
        args: The parsed options.

    Returns:
        The rows; the fused row also carries the sizes, FLOPs and GEMM rates.

    Raises:
        problem_steps.CheckFailed: A contender disagrees with fused (before any timing).
    """
    dname = str(dtype).replace("torch.", "")
    dev = args.device
    label = f"{name} {dname} {dev if dev != 'cpu' else f'{threads}t'}"
    case_ = ps.make_case(name, dtype, dev)
    fused = ps.FluxkernContender(case_, dev)
    cons: list[ps.Contender] = [fused, ps.FluxkernContender(case_, "torch"), ps.PlainTorch(case_)]
    if name == "convection":
        cons.append(ps.HandConvection(case_))
    initial = fused.state()
    # A start a few epochs in, the same for every contender, with the L-BFGS history those
    # epochs built (as in a running solve; 6 epochs fill the history of 100 pairs).
    warm_opt = case_.lbfgs(fused.params)
    for _ in range(args.warm_epochs):
        ps.run_epoch(fused, warm_opt)
    start = fused.state()
    opt_state = copy.deepcopy(warm_opt.state_dict()) if args.warm_epochs else None
    checks = ps.check_case(cons, initial, start, dtype, label)
    evals: dict[str, float] = {}
    for c in cons:
        c.load_state(start)
        evals[c.name] = ps.time_eval(c, args.min_time, dev)
        c.load_state(start)
    epochs = ps.time_epochs(cons, start, case_.lbfgs, opt_state, args.epoch_reps, device=dev)
    flops = common.jet_step_flops(case_.d, case_.problem.width, case_.problem.depth, case_.m)
    flops *= case_.n_rows
    gemm_rows = (1 + case_.d) * case_.n_rows
    gemm = ps.gemm_rate_gflops(gemm_rows, case_.problem.width, dtype, min(args.min_time, 0.5), dev)
    t_eval0, t_ep0 = evals[fused.name], epochs[fused.name]["s"]
    meta = {"workload": "problems", "problem": name, "dtype": dname, "threads": threads}
    meta |= {"device": dev} if dev != "cpu" else {}
    desc = case_.describe()
    rows = []
    for c in cons:
        ep = epochs[c.name]
        n_evals = ep["evals"]
        row = meta | {
            "contender": c.name,
            "kind": c.kind if not isinstance(c, ps.HandConvection) else "plain (by hand)",
            "eval_ms": round(evals[c.name] * 1e3, 3),
            "epoch_ms": round(ep["s"] * 1e3, 2),
            "evals_per_epoch": int(statistics.median(n_evals)),
            "evals_per_epoch_reps": n_evals,
            "ms_per_closure": round(ep["s"] * 1e3 / max(statistics.median(n_evals), 1), 3),
            "x fused eval": round(evals[c.name] / t_eval0, 3),
            "x fused epoch": round(ep["s"] / t_ep0, 3),
            "GFLOP/s": round(flops / evals[c.name] / 1e9, 2),
            "loss_after_epoch": ep["loss_after"],
            "check": checks["start"][c.name],
        }
        if checks["initial"] is not None:
            row["check_initial_weights"] = checks["initial"][c.name]
        if c is fused:
            row |= {
                "flops_per_eval": flops,
                "gemm_same_shape": f"[{gemm_rows}, {case_.problem.width}] x "
                f"[{case_.problem.width}, {case_.problem.width}]",
                "gemm_same_shape_gflops": round(gemm, 2),
                "gemm_peak_gflops": round(peak, 2),
                "of GEMM peak": f"{100 * flops / t_eval0 / 1e9 / peak:.0f}%",
                "op_calls_per_eval": fused.op_calls(),
                "unfused_blocks": fused.unfused_blocks(),
                "warm_epochs": args.warm_epochs,
                "check_tolerance": checks["tolerance"],
                **desc,
            }
        rows.append(row)
        print(
            f"  {label} {c.name}: eval {row['eval_ms']:.2f} ms, epoch {row['epoch_ms']:.1f} ms "
            f"({n_evals} evals), x fused {row['x fused eval']:.2f} / {row['x fused epoch']:.2f}",
            flush=True,
        )
    base = epochs[fused.name]["evals"]
    for c in cons:
        other = epochs[c.name]["evals"]
        if max(abs(a - b) for a, b in zip(other, base, strict=True)) > 2:
            print(
                f"  note: {label}: {c.name} takes {other} evaluations per epoch, fused {base}",
                flush=True,
            )
    print(
        f"  {label}: fused {flops / t_eval0 / 1e9:.1f} GFLOP/s (flux-form forward-mode count, "
        f"{case_.n_rows} rows); torch.mm at the jet's shape {gemm:.1f}, large GEMM {peak:.1f}",
        flush=True,
    )
    return rows


# --------------------------------------------------------------------------- main
def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "--workloads",
        nargs="+",
        choices=WORKLOADS,
        default=[w for w in WORKLOADS if w not in ("users", "inverse")],
    )  # users, inverse: ask for them by name
    p.add_argument(
        "--inverse-budget",
        type=float,
        default=120.0,
        help="inverse workload: fluxkern seconds per run (DeepXDE: 300; --quick: 5 and 5)",
    )
    p.add_argument("--inverse-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--users-budget",
        type=float,
        default=60.0,
        help="users workload: seconds per contender and problem (--quick: 5)",
    )
    p.add_argument(
        "--users-problems",
        nargs="+",
        default=None,
        help="users workload: examples/NAME.py problems (default all)",
    )
    p.add_argument("--quick", action="store_true", help="small sizes and caps (a smoke run)")
    p.add_argument("--n", type=int, default=8192, help="points of the jet and step workloads")
    p.add_argument("--scaling-n", type=int, nargs="+", default=[4**k * 1024 for k in range(6)])
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--step-cap", type=float, default=2.0, help="scaling: seconds per step")
    p.add_argument("--max-gb", type=float, default=6.0, help="scaling: memory estimate cap")
    p.add_argument("--tta-cap", type=float, nargs=2, default=[300.0, 900.0],
                   metavar=("POISSON_S", "HEAT_S"), help="seconds per run (0 skips)")  # fmt: skip
    p.add_argument("--min-time", type=float, default=1.0, help="seconds of timing per contender")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help="torch threads: the problems and dropin workloads run once per value (default 1 "
        "2; --quick: 1), the other workloads at the first (default torch's)",
    )
    p.add_argument(
        "--problems",
        nargs="+",
        choices=fk.problems.names(),
        default=fk.problems.names(),
        help="problems workload: which problems (default all; --quick: poisson)",
    )
    p.add_argument(
        "--dtypes",
        nargs="+",
        choices=["float64", "float32"],
        default=["float64", "float32"],
        help="problems and dropin workloads: dtypes (default both; --quick: float64)",
    )
    p.add_argument(
        "--epoch-reps",
        type=int,
        default=5,
        help="problems workload: timed L-BFGS epochs per contender, after one warm-up",
    )
    p.add_argument(
        "--warm-epochs",
        type=int,
        default=6,
        help="problems workload: fused epochs run from the initial weights before the start "
        "state (parameters, multipliers, L-BFGS history) of every check and timed epoch is saved",
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="problems workload: the device of the points and networks (cuda: the fused op's "
        "cuda kernels, every timed evaluation and epoch ends with a synchronize); the other "
        "workloads run on the CPU only",
    )
    p.add_argument("--out", default=os.path.join("bench", "results"))
    quick = "--quick" in (sys.argv[1:] if argv is None else argv)
    if quick:  # explicit options still win
        p.set_defaults(n=1024, min_time=0.2, scaling_n=[256, 1024], widths=[32], tta_cap=[20, 0])
        p.set_defaults(problems=["poisson"], dtypes=["float64"], epoch_reps=2, warm_epochs=1)
    args = p.parse_args(argv)
    args.problem_threads = args.threads or ([1] if quick else [1, 2])
    if args.device != "cpu" and set(args.workloads) != {"problems"}:
        p.error(f"--device {args.device} is for the problems workload only (--workloads problems)")
    if args.device == "cuda" and "cuda" not in fk.backends():
        p.error("--device cuda: this fluxkern was built without its cuda kernels")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads[0])
    info = common.machine_info(args.device)
    info["deepxde"] = deepxde_version()
    info["backends"] = fk.backends()
    info["fluxkern_source"] = fluxkern_source()
    peak = common.gemm_peak_gflops(torch.float32, args.device)
    info["gemm_peak_gflops_float32"] = round(peak, 1)
    stem = os.path.join(args.out, f"{machine_slug(info)}-{info['date']}")
    print(f"machine: {info['cpu']} ({info['cores']} cores, {info['torch_threads']} torch threads)")
    if "gpu" in info:
        print(f"gpu: {info['gpu']}, CUDA {info['cuda']}, fluxkern backends {info['backends']}")
    print(
        f"versions: python {info['python']}, torch {info['torch']}, fluxkern {info['fluxkern']}, "
        f"deepxde {info['deepxde'] or 'not installed'}; measured float32 GEMM {peak:.0f} GFLOP/s"
    )
    src = info["fluxkern_source"]
    print(
        f"fluxkern from {src['path']} at commit {src.get('commit')}"
        + (f" with {len(src['modified'])} modified files" if src.get("modified") else "")
    )
    payload: dict[str, Any] = {"machine": info, "args": vars(args), "workloads": {}}
    if os.path.exists(stem + ".json"):  # same machine and day: add to (or redo) its workloads
        with open(stem + ".json") as fh:
            payload["workloads"] = json.load(fh).get("workloads", {})
    for wl in args.workloads:
        load = round(os.getloadavg()[0], 2)
        print(f"== {wl}  (load average {load:.2f})", flush=True)
        t0 = time.perf_counter()

        def save(partial: Any, wl: str = wl) -> None:
            payload["workloads"][wl] = {"results": partial, "partial": True, "args": vars(args)}
            common.dump_json(stem + ".json", payload)

        if wl == "tta":
            result: Any = run_tta(args, save)
        elif wl == "scaling":
            result = run_scaling(args, peak, save)
        elif wl == "problems":
            result = run_problems(args, save)
        elif wl == "dropin":
            result = bench_dropin.run(
                argparse.Namespace(
                    sets=list(bench_dropin.SETS),
                    dtypes=args.dtypes,
                    threads=args.problem_threads,
                    min_time=args.min_time,
                    min_rounds=3 if args.quick else 7,
                    quick=args.quick,
                ),
                save,
            )
        elif wl == "users":
            result = run_users(args)
        elif wl == "inverse":
            result = run_inverse(args)
        else:
            result = {"jet": run_jet, "step": run_step}[wl](args, peak)
        payload["workloads"][wl] = {
            "results": result,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "args": vars(args),
            "seconds": round(time.perf_counter() - t0, 1),
            "load_average_before": load,
            "load_average_after": round(os.getloadavg()[0], 2),
        }
        common.dump_json(stem + ".json", payload)
    text = report.write(payload, stem)
    print(text)
    print(f"wrote {stem}.json, {stem}.md and the plots", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
