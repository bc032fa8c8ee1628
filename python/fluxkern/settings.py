"""Process-wide settings of the fused ops: float32 GEMM precision on CUDA, the CUDA jet kernel and
the CPU loss kernel.

The settings live in the compiled extension, which reads them at every op call; without the
extension they are kept here and have nothing to act on. They apply to the whole process (every
thread), like torch's own backend flags.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from fluxkern import _ext

__all__ = [
    "CPU_KERNELS",
    "CUDA_KERNELS",
    "cpu_kernel",
    "get_cpu_kernel",
    "set_cpu_kernel",
    "MATMUL_PRECISIONS",
    "cuda_kernel",
    "get_cuda_kernel",
    "get_matmul_precision",
    "matmul_precision",
    "set_cuda_kernel",
    "set_matmul_precision",
]

MATMUL_PRECISIONS = ("ieee", "tf32")
CUDA_KERNELS = ("gemm", "tile")
CPU_KERNELS = ("tile", "gemm")

# Used only when the extension is not built (the extension holds the settings otherwise).
_fallback = {
    "matmul_precision": "ieee",
    "cuda_kernel": "tile" if os.environ.get("FLUXKERN_CUDA_TILE") == "1" else "gemm",
    "cpu_kernel": "gemm" if os.environ.get("FLUXKERN_CPU_TILE") == "0" else "tile",
}


def _check(value: object, choices: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        shown = " or ".join(repr(c) for c in choices)
        raise ValueError(f"fluxkern: unknown {what} {value!r}; choose {shown}")
    return value


def set_matmul_precision(mode: str) -> None:
    """Sets the precision of fluxkern's own float32 GEMMs on CUDA.

    "tf32" runs the cuBLAS GEMMs of the fused ops (the jet forward and backward, also inside the
    fused loss) on TensorFloat-32 tensor cores: operands rounded to 10 mantissa bits, float32
    accumulation. fluxkern turns torch's cuBLAS TF32 flag on only around its own GEMMs and
    restores it after each op, so other matmuls keep torch's setting (other threads running
    float32 CUDA matmuls at the same moment do see it). The expected accuracy cost is in
    bench/README.md ("TF32", emulated on CPU).

    On CPU, for float64 and for the fused tile kernel (``set_cuda_kernel("tile")``, plain float32
    arithmetic) the setting is accepted and has no effect: results are unchanged.

    Args:
        mode: "ieee" (full float32, the default) or "tf32".

    Raises:
        ValueError: mode is not "ieee" or "tf32".
    """
    mode = _check(mode, MATMUL_PRECISIONS, "matmul precision")
    if _ext.available():
        _ext.module().set_cuda_matmul_precision(mode)
    else:
        _fallback["matmul_precision"] = mode


def get_matmul_precision() -> str:
    """Returns the precision of fluxkern's float32 CUDA GEMMs: "ieee" or "tf32"."""
    if _ext.available():
        return str(_ext.module().get_cuda_matmul_precision())
    return _fallback["matmul_precision"]


@contextmanager
def matmul_precision(mode: str) -> Iterator[None]:
    """Context manager: :func:`set_matmul_precision` inside the block, the previous mode after.

    Args:
        mode: "ieee" or "tf32".

    Yields:
        None.

    Raises:
        ValueError: mode is not "ieee" or "tf32" (raised before the block runs).
    """
    previous = get_matmul_precision()
    set_matmul_precision(mode)
    try:
        yield
    finally:
        set_matmul_precision(previous)


def set_cuda_kernel(kernel: str) -> None:
    """Chooses the CUDA kernel of the jet forward (also inside the fused loss).

    "gemm" (the default) runs cuBLAS GEMMs on stacked primal and tangent rows with fused
    elementwise kernels between them. "tile" runs one fused kernel per tile of points that keeps
    activations and tangents in shared memory; it serves hidden widths <= 128, d <= 8 and
    m <= 32 (other shapes, or a device with too little shared memory, fall back to "gemm"). The
    backward is the same for both. "tile" is opt-in because it has not yet run on a GPU (it is
    tested only by emulation on the CPU, tests/test_jet_tile_emulated.py); bench/gpu_check.sh
    measures both so that the default can be chosen on a GPU. The environment variable
    ``FLUXKERN_CUDA_TILE=1`` makes "tile" the initial value. No effect on CPU tensors.

    Args:
        kernel: "gemm" or "tile".

    Raises:
        ValueError: kernel is not "gemm" or "tile".
    """
    kernel = _check(kernel, CUDA_KERNELS, "CUDA jet kernel")
    if _ext.available():
        _ext.module().set_cuda_jet_kernel(kernel)
    else:
        _fallback["cuda_kernel"] = kernel


def get_cuda_kernel() -> str:
    """Returns the CUDA jet forward kernel: "gemm" or "tile"."""
    if _ext.available():
        return str(_ext.module().get_cuda_jet_kernel())
    return _fallback["cuda_kernel"]


@contextmanager
def cuda_kernel(kernel: str) -> Iterator[None]:
    """Context manager: :func:`set_cuda_kernel` inside the block, the previous kernel after.

    Args:
        kernel: "gemm" or "tile".

    Yields:
        None.

    Raises:
        ValueError: kernel is not "gemm" or "tile" (raised before the block runs).
    """
    previous = get_cuda_kernel()
    set_cuda_kernel(kernel)
    try:
        yield
    finally:
        set_cuda_kernel(previous)


def set_cpu_kernel(kernel: str) -> None:
    """Chooses the CPU kernel of the fused block loss (``AugmentedLagrangian`` with backend "cpu")
    and of the jet.

    "tile" (the default) runs the whole loss (jet, residuals, loss and the reverse pass to the
    weight gradients) one tile of 32 points at a time with every intermediate in cache, through
    register-blocked micro-kernels instead of BLAS, and skips the input tangents of tiles whose
    residuals read no derivative; it serves hidden widths <= 128 and up to 16 hidden layers
    (wider networks use "gemm"). "gemm" runs the jet through BLAS GEMMs on stacked value and
    tangent rows of all points, then the residual kernel, then the jet backward: faster for wide
    networks. Both give the same results up to rounding. The environment variable
    ``FLUXKERN_CPU_TILE=0`` makes "gemm" the initial value. No effect on CUDA tensors.

    The same choice applies to the jet op on CPU tensors (``fluxkern.jet``, ``MLP.jet``): "tile"
    computes y and J one tile at a time and saves nothing, and its backward recomputes each
    tile's forward in cache before the reverse pass (same width limits); "gemm" saves the layer
    buffers of all points for a backward through BLAS GEMMs.

    Args:
        kernel: "tile" or "gemm".

    Raises:
        ValueError: kernel is not "tile" or "gemm".
    """
    kernel = _check(kernel, CPU_KERNELS, "CPU loss kernel")
    if _ext.available():
        _ext.module().set_cpu_loss_kernel(kernel)
    else:
        _fallback["cpu_kernel"] = kernel


def get_cpu_kernel() -> str:
    """Returns the CPU block-loss kernel: "tile" or "gemm"."""
    if _ext.available():
        return str(_ext.module().get_cpu_loss_kernel())
    return _fallback["cpu_kernel"]


@contextmanager
def cpu_kernel(kernel: str) -> Iterator[None]:
    """Context manager: :func:`set_cpu_kernel` inside the block, the previous kernel after.

    Args:
        kernel: "tile" or "gemm".

    Yields:
        None.

    Raises:
        ValueError: kernel is not "tile" or "gemm" (raised before the block runs).
    """
    previous = get_cpu_kernel()
    set_cpu_kernel(kernel)
    try:
        yield
    finally:
        set_cpu_kernel(previous)
