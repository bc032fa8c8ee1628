"""Loss benchmark: one training step (loss + parameter gradient) of poisson in flux form.

8192 interior (one or more --n) and 512 boundary points, MLP 2 -> 64 x 4 -> 3 (u, qx, qy), tanh,
on the CPU or a GPU (--device). Contenders in one run: the fused block-loss op of that device,
its torch twin, and a plain PyTorch implementation of the same loss with
torch.autograd.grad(create_graph=True). Also the fused jet alone on the same points (forward +
parameter gradient of sum y^2 + sum J^2), to show what the residual + loss part adds. The losses
are checked to agree before timing; on cuda every timed step ends with a synchronize.

Usage: python bench/bench_loss.py [--n 8192 ...] [--nb 512] [--width 64] [--depth 4]
       [--dtypes float32 float64] [--device cpu|cuda] [--min-time 1.0] [--json PATH]

On cuda the rows also give the share of the card's datasheet peak (FP32 or FP64 SIMT, without
tensor cores; DESIGN.md section 5) when the card is known to bench/common.py.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import fluxkern as fk  # noqa: E402
import poisson_case as case  # noqa: E402


def run(args) -> list[dict]:
    rows: list[dict] = []
    for dname in args.dtypes:
        dtype = getattr(torch, dname)
        peak = common.gemm_peak_gflops(dtype, args.device)
        sheet = common.datasheet_peak_gflops(dtype, args.device)
        for n in args.n:
            rows += run_one(args, dname, n, peak, sheet)
    return rows


def run_one(args, dname: str, n: int, peak: float, sheet: float | None) -> list[dict]:
    rows = []
    dtype = getattr(torch, dname)
    device = args.device
    net = case.make_net(args.width, args.depth, 3, dtype, device)
    params = list(net.parameters())
    pts = case.make_points(n, args.nb, dtype, device)
    terms = case.flux_terms(pts)
    seq = net.to_sequential()
    seq_params = list(seq.parameters())
    als = {}
    for backend in (device, "torch"):
        al = fk.AugmentedLagrangian(net, terms, backend=backend)
        for _ in range(2):  # non-trivial multipliers
            al.update_multipliers()
        als[backend] = al

    def fused_step(al):
        def step():
            loss = al()
            return loss, torch.autograd.grad(loss, params)

        return step

    fused_name = f"fluxkern fused ({device})"
    steps = {
        fused_name: fused_step(als[device]),
        "fluxkern torch twin": fused_step(als["torch"]),
    }
    lam_flux, lam_bc = als[device].multipliers["flux"], als[device].multipliers["bc"]

    def plain_step():
        loss = case.flux_al_loss_autograd(seq, pts, lam_flux, lam_bc)
        return loss, torch.autograd.grad(loss, seq_params)

    steps["plain PyTorch autograd.grad"] = plain_step
    xall = torch.cat([pts.xi, pts.xb])

    def jet_only():
        y, jac = net.jet(xall, backend=device)
        loss = (y * y).sum() + (jac * jac).sum()
        return loss, torch.autograd.grad(loss, params)

    ref = steps["fluxkern torch twin"]()[0].item()
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for name, step in steps.items():
        val = step()[0].item()
        if abs(val - ref) > tol * abs(ref):
            raise SystemExit(f"{name}: loss {val} differs from the twin's {ref}")
    times = {}
    for name, step in [*steps.items(), ("fused jet alone (same points)", jet_only)]:
        try:
            times[name] = common.time_call(step, device=device, min_time=args.min_time)
        except RuntimeError as exc:  # e.g. out of memory: reported, not hidden
            times[name] = None
            print(f"{name} failed: {str(exc).splitlines()[0]}", file=sys.stderr)
        if device == "cuda":
            torch.cuda.empty_cache()
    t_fused, t_jet = times[fused_name], times["fused jet alone (same points)"]
    if t_fused is None:
        raise SystemExit(f"{fused_name} failed; see above")
    flops = common.jet_step_flops(2, args.width, args.depth, 3) * (n + args.nb)
    for name, t in times.items():
        row = {"dtype": dname, "N": n, "impl": name}
        if t is None:
            row["ms/step"] = "failed"
            rows.append(row)
            continue
        gflops = flops / t / 1e9
        row.update(
            {
                "ms/step": f"{t * 1e3:.3f}",
                "vs fused": f"{t / t_fused:.2f}x",
                "GFLOP/s": f"{gflops:.1f}",
                "of GEMM peak": f"{100 * gflops / peak:.0f}%",
            }
        )
        if sheet:
            row["of datasheet peak"] = f"{100 * gflops / sheet:.0f}%"
        rows.append(row)
    if t_jet is None:
        return rows
    rows.append(
        {
            "dtype": dname,
            "N": n,
            "impl": "residual+loss overhead over jet alone",
            "ms/step": f"{(t_fused - t_jet) * 1e3:.3f}",
            "vs fused": f"{100 * (t_fused / t_jet - 1):+.0f}%",
        }
    )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[8192], help="one or more interior sizes")
    p.add_argument("--nb", type=int, default=512, help="boundary points")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds of timing per contender")
    p.add_argument("--json", default=None, help="also write the rows and machine info here")
    args = p.parse_args(argv)
    if args.device not in fk.backends():
        p.error(f"the fused {args.device} backend is not available: backends {fk.backends()}")
    info = common.machine_info(args.device)
    print(f"machine: {info['cpu']} ({info['cores']} cores, {info['torch_threads']} torch threads)")
    print(f"versions: python {info['python']}, torch {info['torch']}, fluxkern {info['fluxkern']}")
    if "gpu" in info:
        print(f"gpu: {info['gpu']} (CUDA {info['cuda']})")
        print(
            f"fused CUDA forward: {info['cuda_jet_kernel']} kernel; float32 GEMMs: "
            f"{info['matmul_precision']}"
        )
    sizes = ", ".join(map(str, args.n))
    print(
        f"poisson flux form on {args.device}: {sizes} interior + {args.nb} boundary points, MLP 2-"
        f"{args.width}x{args.depth}-3 tanh; one step = loss + parameter gradient"
    )
    rows = run(args)
    columns = ["dtype", "N", "impl", "ms/step", "vs fused", "GFLOP/s", "of GEMM peak"]
    if any("of datasheet peak" in r for r in rows):
        columns.append("of datasheet peak")
    common.print_table(rows, columns)
    print("'vs fused' = this row's time / the fused step's time (higher: fused is faster)")
    if args.json:
        common.dump_json(args.json, {"machine": info, "device": args.device, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
