"""Jet benchmark: loss = sum of squares of (y, J), forward + parameter gradient.

Compares, in one run, the fused fluxkern op, its pure-torch twin, the same computation written
with torch.autograd.grad(create_graph=True) and with torch.func (vmap of jacfwd). Checks that all
give the same loss and gradient before timing.

Usage: python bench/bench_jet.py [--n 8192 ...] [--width 64 ...] [--depth 4]
       [--dtypes float32 float64] [--device cpu|cuda] [--min-time 1.0] [--json PATH]

On cuda the rows also give the share of the card's datasheet peak (FP32 or FP64 SIMT, without
tensor cores; DESIGN.md section 5) when the card is known to bench/common.py.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from torch.func import functional_call, jacfwd, vmap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import fluxkern  # noqa: E402


def _loss_from(y: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
    return (y * y).sum() + (jac * jac).sum()


def make_contenders(net: fluxkern.MLP, x: torch.Tensor) -> dict[str, callable]:
    """Step functions returning (loss, grads) for each implementation."""
    params = list(net.parameters())
    seq = net.to_sequential()  # same function, normalisation folded in
    seq_params = list(seq.parameters())

    def fused(backend):
        def step():
            y, jac = fluxkern.jet(net, x, backend=backend)
            loss = _loss_from(y, jac)
            return loss, torch.autograd.grad(loss, params)

        return step

    def autograd_step():
        xr = x.detach().requires_grad_(True)
        y = seq(xr)
        cols = [
            torch.autograd.grad(y[:, k].sum(), xr, create_graph=True)[0] for k in range(y.shape[1])
        ]
        jac = torch.stack(cols, dim=1)  # [N, m, d]
        loss = _loss_from(y, jac)
        return loss, torch.autograd.grad(loss, seq_params)

    names = dict(seq.named_parameters())

    def f_single(p, xi):
        return functional_call(seq, p, (xi,))

    def func_step():
        def loss_fn(p):
            y = functional_call(seq, p, (x,))
            jac = vmap(jacfwd(f_single, argnums=1), in_dims=(None, 0))(p, x)
            return _loss_from(y, jac)

        p = {k: v for k, v in names.items()}
        loss = loss_fn(p)
        return loss, torch.autograd.grad(loss, list(p.values()))

    out = {}
    for b in fluxkern.backends():
        if b == "torch" or b == x.device.type:
            out[f"fluxkern[{b}]"] = fused(b)
    out["autograd.grad(create_graph)"] = autograd_step
    out["torch.func vmap(jacfwd)"] = func_step
    return out


def first_layer_grad_in_seq_coords(net: fluxkern.MLP, grads):
    """Maps MLP gradients to the folded Sequential's first-layer coordinates for comparison."""
    g = list(grads)
    g[0] = g[0] * net.input_scale  # dL/dW' = dL/dW * scale (W' = W / scale, b' = b - W' shift)
    return g


def run_one(args, dname: str, n: int, width: int, peak: float, sheet: float | None) -> list[dict]:
    """Rows of one (dtype, N, width) configuration, one per contender."""
    device = args.device
    dtype = getattr(torch, dname)
    torch.manual_seed(0)
    net = fluxkern.MLP(
        2,
        3,
        width,
        args.depth,
        "tanh",
        input_shift=[0.5, 0.5],
        input_scale=[0.29, 0.29],
        dtype=dtype,
        device=device,
    )
    x = torch.rand(n, 2, dtype=dtype, device=device)  # [N, 2]
    flops = common.jet_step_flops(2, width, args.depth, 3) * n
    contenders = make_contenders(net, x)
    ref_loss, _ = contenders["fluxkern[torch]"]()
    times = {}
    for name, step in contenders.items():
        try:
            loss, _ = step()
            rel = abs(loss.item() - ref_loss.item()) / abs(ref_loss.item())
            tol = 1e-4 if dtype == torch.float32 else 1e-10
            if rel > tol:
                raise SystemExit(f"{name}: loss {loss.item()} differs from {ref_loss.item()}")
            times[name] = common.time_call(step, device=device, min_time=args.min_time)
        except RuntimeError as exc:  # e.g. out of memory: reported, not hidden
            times[name] = None
            print(f"{name} failed: {str(exc).splitlines()[0]}", file=sys.stderr)
        if device == "cuda":
            torch.cuda.empty_cache()
    fused_name = f"fluxkern[{device}]" if f"fluxkern[{device}]" in times else "fluxkern[torch]"
    t_fused = times[fused_name]
    rows = []
    for name, t in times.items():
        row = {"dtype": dname, "N": n, "width": width, "impl": name}
        if t is None:
            row["ms/step"] = "failed"
        else:
            gflops = flops / t / 1e9
            row.update(
                {
                    "ms/step": f"{t * 1e3:.3f}",
                    "fused speed-up": f"{t / t_fused:.2f}x" if t_fused else "",
                    "GFLOP/s": f"{gflops:.1f}",
                    "of GEMM peak": f"{100 * gflops / peak:.0f}%",
                }
            )
            if sheet:
                row["of datasheet peak"] = f"{100 * gflops / sheet:.0f}%"
        row["GEMM peak GFLOP/s"] = f"{peak:.0f}"
        if sheet:
            row["datasheet peak GFLOP/s"] = f"{sheet:.0f}"
        rows.append(row)
    return rows


def run(args) -> list[dict]:
    rows = []
    for dname in args.dtypes:
        dtype = getattr(torch, dname)
        peak = common.gemm_peak_gflops(dtype, args.device)
        sheet = common.datasheet_peak_gflops(dtype, args.device)
        for n in args.n:
            for width in args.width:
                rows += run_one(args, dname, n, width, peak, sheet)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[8192], help="one or more point counts")
    p.add_argument("--width", type=int, nargs="+", default=[64], help="one or more widths")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds of timing per contender")
    p.add_argument("--json", default=None, help="also write the rows and machine info here")
    args = p.parse_args(argv)
    info = common.machine_info(args.device)
    print(f"machine: {info['cpu']} ({info['cores']} cores, {info['torch_threads']} torch threads)")
    print(f"versions: python {info['python']}, torch {info['torch']}, fluxkern {info['fluxkern']}")
    if "gpu" in info:
        print(f"gpu: {info['gpu']} (CUDA {info['cuda']})")
        print(
            f"fused CUDA forward: {info['cuda_jet_kernel']} kernel; float32 GEMMs: "
            f"{info['matmul_precision']}"
        )
    widths = ", ".join(map(str, args.width))
    print(
        f"jet: d=2, width={widths}, depth={args.depth}, m=3, tanh; "
        "loss = sum y^2 + sum J^2; forward + parameter gradient"
    )
    rows = run(args)
    common.print_table(
        rows,
        [
            "dtype",
            "N",
            "width",
            "impl",
            "ms/step",
            "fused speed-up",
            "GFLOP/s",
            "of GEMM peak",
            "GEMM peak GFLOP/s",
        ]
        + (
            ["of datasheet peak", "datasheet peak GFLOP/s"]
            if any("datasheet peak GFLOP/s" in r for r in rows)
            else []
        ),
    )
    print("'fused speed-up' = this row's time / the fused op's time (higher: fused is faster)")
    if args.json:
        common.dump_json(args.json, {"machine": info, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
