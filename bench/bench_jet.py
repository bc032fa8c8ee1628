"""Jet benchmark: loss = sum of squares of (y, J), forward + parameter gradient.

Compares, in one run, the fused fluxkern op, its pure-torch twin, the same computation written
with torch.autograd.grad(create_graph=True) and with torch.func (vmap of jacfwd). Checks that all
give the same loss and gradient before timing.

Usage: python bench/bench_jet.py [--n 8192] [--width 64] [--depth 4] [--dtypes float32 float64]
       [--device cpu] [--quick] [--json PATH]
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


def run(args) -> list[dict]:
    rows = []
    device = args.device
    for dname in args.dtypes:
        dtype = getattr(torch, dname)
        torch.manual_seed(0)
        net = fluxkern.MLP(
            2,
            3,
            args.width,
            args.depth,
            "tanh",
            input_shift=[0.5, 0.5],
            input_scale=[0.29, 0.29],
            dtype=dtype,
            device=device,
        )
        x = torch.rand(args.n, 2, dtype=dtype, device=device)
        peak = common.gemm_peak_gflops(dtype, device)
        flops = common.jet_step_flops(2, args.width, args.depth, 3) * args.n
        contenders = make_contenders(net, x)
        ref_loss, _ = contenders["fluxkern[torch]"]()
        times = {}
        for name, step in contenders.items():
            loss, _ = step()
            rel = abs(loss.item() - ref_loss.item()) / abs(ref_loss.item())
            tol = 1e-4 if dtype == torch.float32 else 1e-10
            if rel > tol:
                raise SystemExit(f"{name}: loss {loss.item()} differs from {ref_loss.item()}")
            try:
                times[name] = common.time_call(step, device=device, min_time=args.min_time)
            except RuntimeError as exc:  # pragma: no cover - reported, not hidden
                times[name] = None
                print(f"{name} failed: {exc}", file=sys.stderr)
        fused_name = f"fluxkern[{device}]" if f"fluxkern[{device}]" in times else "fluxkern[torch]"
        t_fused = times[fused_name]
        for name, t in times.items():
            row = {"dtype": dname, "N": args.n, "impl": name}
            if t is None:
                row["ms/step"] = "failed"
            else:
                gflops = flops / t / 1e9
                row.update(
                    {
                        "ms/step": f"{t * 1e3:.2f}",
                        "fused speed-up": f"{t / t_fused:.2f}x",
                        "GFLOP/s": f"{gflops:.1f}",
                        "of GEMM peak": f"{100 * gflops / peak:.0f}%",
                    }
                )
            row["GEMM peak GFLOP/s"] = f"{peak:.0f}"
            rows.append(row)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds of timing per contender")
    p.add_argument("--json", default=None, help="also write the rows and machine info here")
    args = p.parse_args(argv)
    info = common.machine_info(args.device)
    print(f"machine: {info['cpu']} ({info['cores']} cores, {info['torch_threads']} torch threads)")
    print(f"versions: python {info['python']}, torch {info['torch']}, fluxkern {info['fluxkern']}")
    print(
        f"jet: d=2, width={args.width}, depth={args.depth}, m=3, tanh; "
        "loss = sum y^2 + sum J^2; forward + parameter gradient"
    )
    rows = run(args)
    common.print_table(
        rows,
        [
            "dtype",
            "N",
            "impl",
            "ms/step",
            "fused speed-up",
            "GFLOP/s",
            "of GEMM peak",
            "GEMM peak GFLOP/s",
        ],
    )
    print("'fused speed-up' = this row's time / the fused op's time (higher: fused is faster)")
    if args.json:
        common.dump_json(args.json, {"machine": info, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
