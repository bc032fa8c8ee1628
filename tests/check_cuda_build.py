"""Checks the CUDA variant of the extension built by `make cuda-build`, on a machine with no GPU.

Nothing can run on a GPU there, so this checks what can be seen without one: the build has its
CUDA kernels for every wanted architecture (the device code of the fused tile kernel included),
the CUDA implementations (not the no-CUDA stubs) are
registered for every op (the jet ops, block_loss and residual_jacobian), the CUDA glue of each
is reachable and checks its arguments, and the CPU kernels of the same build still compute the
jet and the block loss right. Exits non-zero with the reasons otherwise.
Not a pytest file (no test_ prefix): `make cuda-build` runs it with the CUDA venv's Python.

Usage: python tests/check_cuda_build.py [ARCH ...]     (default: 80 90)
"""

from __future__ import annotations

import re
import sys

import torch

import fluxkern
from fluxkern import reference
from fluxkern.nn import MlpSpec
from fluxkern.program import split_op_args

OPS = ("mlp_jet", "mlp_jet_backward", "block_loss", "residual_jacobian")
# Device code of the fused tile kernel: float and double times tanh, sin, SiLU.
TILE_KERNEL_INSTANCES = 6


def _jet_args() -> tuple:
    torch.manual_seed(0)
    net = fluxkern.MLP(2, 3, 7, 2, "tanh", dtype=torch.float64)
    s = net.spec()
    x = torch.rand(5, 2, dtype=torch.float64)  # [N, d]
    return x, s.shift, s.scale, [w.detach() for w in s.weights], [b.detach() for b in s.biases]


def _block_loss_args() -> list:
    """A small paired block (pointwise multipliers, both forms) on the CPU, float64."""
    x, shift, scale, ws, bs = _jet_args()
    n, n_res = 2, 3  # x has 5 rows: take 4 as 2 pairs
    x = x[: 2 * n]
    g = torch.Generator().manual_seed(1)
    cols = torch.rand(2 * n, 2, generator=g, dtype=torch.float64)  # [P, K]
    table = torch.tensor(  # [M, 5]: residual, column, fields (y_0..2, then J row-major)
        [[0, -1, 0, -1, -1], [0, 1, 3, 4, -1], [1, 0, 2, 5, 8], [2, -1, 1, 1, 1]],
        dtype=torch.int32,
    )
    coef = torch.tensor([1.0, -0.5, 2.0, 0.3], dtype=torch.float64)  # [M]
    lam = torch.rand(n, n_res, generator=g, dtype=torch.float64)  # [N, R]
    mu = torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64)
    squared = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    red = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
    return [x, shift, scale, ws, bs, "tanh", cols, table, coef, lam, mu, squared, red, n_res, True]


def problems(want_archs: list[str]) -> list[str]:
    """Everything wrong with the installed build, as messages (empty when it is right)."""
    out = []
    if torch.version.cuda is None:
        out.append(f"torch {torch.__version__} is a CPU-only build; a CUDA build is needed")
    info = fluxkern.build_info()
    if "error" in info:
        return out + [f"the fluxkern extension did not load: {info['error']}"]
    if info.get("cuda") is not True:
        out.append("fluxkern.build_info()['cuda'] is not True: the build has no CUDA kernels")
    archs = [a for a in str(info.get("cuda_architectures", "")).split(",") if a]
    missing = [a for a in want_archs if a not in archs]
    if missing:
        out.append(f"CUDA architectures {missing} missing from the build's {archs}")
    for op in OPS:
        if not torch._C._dispatch_has_kernel_for_dispatch_key(f"fluxkern::{op}", "CUDA"):
            out.append(f"fluxkern::{op} has no CUDA kernel registered")
    out += _tile_kernel_problems()
    if out:
        return out
    # The CUDA implementation itself (reached with cpu tensors through the CUDA key) must refuse
    # them with its device check, not with the no-CUDA stub's message.
    x, shift, scale, ws, bs = _jet_args()
    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
    try:
        torch.ops.fluxkern.mlp_jet.default.redispatch(keys, x, shift, scale, ws, bs, "tanh")
        out.append("the CUDA kernel of mlp_jet accepted cpu tensors")
    except RuntimeError as exc:
        if "CUDA kernel was called with x on cpu" not in str(exc):
            out.append(f"the CUDA kernel of mlp_jet refused cpu tensors with: {exc}")
    args = _block_loss_args()
    try:
        torch.ops.fluxkern.block_loss.default.redispatch(keys, *args)
        out.append("the CUDA kernel of block_loss accepted cpu tensors")
    except RuntimeError as exc:
        if "CUDA kernel was called with x on cpu" not in str(exc):
            out.append(f"the CUDA kernel of block_loss refused cpu tensors with: {exc}")
    jac_args = args[:9] + args[13:]  # residual_jacobian takes block_loss's args less lam..red
    try:
        torch.ops.fluxkern.residual_jacobian.default.redispatch(keys, *jac_args)
        out.append("the CUDA kernel of residual_jacobian accepted cpu tensors")
    except RuntimeError as exc:
        if "CUDA kernel was called with x on cpu" not in str(exc):
            out.append(f"the CUDA kernel of residual_jacobian refused cpu tensors with: {exc}")
    # The CPU kernels of this build against the torch twin.
    y, jac, _ = torch.ops.fluxkern.mlp_jet(x, shift, scale, ws, bs, "tanh")
    y_ref, jac_ref = reference.mlp_jet(x, MlpSpec(shift, scale, ws, bs, "tanh"))
    if not (torch.allclose(y, y_ref, rtol=1e-12) and torch.allclose(jac, jac_ref, rtol=1e-12)):
        out.append("the CPU jet of the CUDA build differs from the torch twin")
    loss, c = torch.ops.fluxkern.block_loss(*args)[:2]
    loss_ref, c_ref = reference.block_loss(*split_op_args(args))
    if not (torch.allclose(loss, loss_ref, rtol=1e-12) and torch.allclose(c, c_ref, rtol=1e-12)):
        out.append("the CPU block_loss of the CUDA build differs from the torch twin")
    return out


def _tile_kernel_problems() -> list[str]:
    """The compiled device code (cubin sections in the fatbinary) of every tile-kernel instance."""
    from fluxkern import _ext

    with open(_ext.module().__file__, "rb") as fh:
        data = fh.read()
    found = set(re.findall(rb"\.text\.(_ZN8fluxkern23jet_tile_forward_kernel\w+)", data))
    if len(found) != TILE_KERNEL_INSTANCES:
        return [
            f"the build holds device code for {len(found)} instances of the tile kernel "
            f"(jet_tile_forward_kernel), expected {TILE_KERNEL_INSTANCES}"
        ]
    return []


def main(argv: list[str]) -> int:
    want = argv or ["80", "90"]
    info = fluxkern.build_info()
    print(
        f"fluxkern CUDA build: torch {torch.__version__} (CUDA {torch.version.cuda}), "
        f"cuda={info.get('cuda')}, architectures={info.get('cuda_architectures')!r}, "
        f"compiler {info.get('compiler')}"
    )
    found = problems(want)
    for p in found:
        print(f"cuda-build check FAILED: {p}", file=sys.stderr)
    if not found:
        print(f"cuda-build check passed: CUDA kernels for {', '.join(want)} compiled and linked")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
