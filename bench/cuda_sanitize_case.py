"""A small jet case for compute-sanitizer (memcheck, racecheck, initcheck): every CUDA kernel of
the op runs, forward and backward, for each activation and dtype, at odd sizes and at N = 0, with
the default GEMM forward and with the fused tile kernel, and the results are checked against the
torch twin on the CPU.

Run under the tool with the caching allocator off, so that every tensor is its own allocation and
memcheck sees the true bounds of each buffer:

    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck --leak-check no \\
        --error-exitcode 1 python bench/cuda_sanitize_case.py

Exits 1 when a result is wrong, 2 when the backend is not available. `--device cpu` runs the same
checks on the CPU backend (to test this script on a machine without a GPU).
"""

from __future__ import annotations

import argparse
import sys

import torch

import fluxkern
from fluxkern import reference
from fluxkern.nn import MlpSpec


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def case(n, d, width, depth, m, act: str, dtype: torch.dtype, device: str = "cuda") -> float:
    """Largest relative error of y, J and dl/d(params, x) against the twin on the CPU."""
    torch.manual_seed(n + d + width)
    net = fluxkern.MLP(d, m, width, depth, act, dtype=dtype, device=device)
    with torch.no_grad():
        for layer in net.layers:
            layer.bias.normal_(0, 0.3)
    x = (torch.rand(n, d, dtype=dtype, device=device) * 2 - 1).requires_grad_(True)  # [N, d]
    gy = torch.randn(n, m, dtype=dtype, device=device)  # [N, m]
    gj = torch.randn(n, m, d, dtype=dtype, device=device)  # [N, m, d]
    s = net.spec()
    wanted = [*s.weights, *s.biases, x]
    y, jac = fluxkern.jet(net, x, backend=device)
    grads = torch.autograd.grad((y * gy).sum() + (jac * gj).sum(), wanted)
    if device == "cuda":
        torch.cuda.synchronize()
    if n == 0:
        return 0.0
    cpu = [t.detach().cpu().double().requires_grad_(True) for t in wanted]
    k = len(s.weights)
    wc, bc, xc = cpu[:k], cpu[k : 2 * k], cpu[-1]
    shift, scale = s.shift.cpu().double(), s.scale.cpu().double()
    yr, jr = reference.mlp_jet(xc, MlpSpec(shift, scale, wc, bc, s.activation))
    loss_ref = (yr * gy.cpu().double()).sum() + (jr * gj.cpu().double()).sum()
    ref = torch.autograd.grad(loss_ref, cpu)
    errs = [rel_err(y, yr), rel_err(jac, jr)]
    errs += [rel_err(a, b) for a, b in zip(grads, ref, strict=True)]
    return max(errs)


# (N, d, width, depth, m): odd sizes, N = 0, and (N = 70, width 128) two tiles of the tile kernel
# with the last one partial.
CASES = ((37, 3, 19, 2, 2), (0, 2, 8, 2, 3), (5, 1, 33, 1, 1), (70, 2, 128, 2, 3))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda; cpu only to check this script")
    device = p.parse_args(argv).device
    if device not in fluxkern.backends():
        print(f"{device} backend not available: backends {fluxkern.backends()}", file=sys.stderr)
        return 2
    worst = 0.0
    bad = []
    # Both CUDA forwards: the GEMM path and the fused tile kernel (no effect on the CPU).
    for kernel in ("gemm", "tile"):
        with fluxkern.cuda_kernel(kernel):
            for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 2e-5)):
                for act in ("tanh", "sin", "silu"):
                    for n, d, width, depth, m in CASES:
                        err = case(n, d, width, depth, m, act, dtype, device)
                        worst = max(worst, err) if dtype == torch.float64 else worst
                        if not err < tol:
                            bad.append(
                                f"{kernel} {act} {dtype} N={n} d={d} W={width}: rel err "
                                f"{err:.2e} > {tol}"
                            )
    for line in bad:
        print(f"WRONG: {line}", file=sys.stderr)
    print(f"sanitize case: {'FAILED' if bad else 'ok'}; worst float64 rel err {worst:.1e}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
