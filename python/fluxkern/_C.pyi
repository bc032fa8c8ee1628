"""Type stub of fluxkern's compiled extension (csrc/module.cpp).

Importing the module also registers the tensor ops with the dispatcher (csrc/registration.cpp);
they are reached as ``torch.ops.fluxkern.<name>``, not as attributes of this module: ``mlp_jet``,
``mlp_jet_backward``, ``block_loss`` (CPU and CUDA) and ``lbfgs_direction`` (CPU).
"""

from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")

def build_info() -> dict[str, Any]:
    """Compiler, C++ standard, threads, parallel backend and CUDA architectures of this build.

    Keys: ``compiler``, ``torch_version_built_against``, ``cplusplus``, ``openmp``, ``threads``,
    ``cpu_kernels``, ``parallel_info``, ``cuda``, ``cuda_architectures``.
    """

def set_cuda_matmul_precision(mode: str) -> None:
    """Precision of fluxkern's float32 CUDA GEMMs: 'ieee' (default) or 'tf32'."""

def get_cuda_matmul_precision() -> str:
    """The precision set by set_cuda_matmul_precision."""

def set_cuda_jet_kernel(kernel: str) -> None:
    """The CUDA jet forward: 'gemm' (default) or 'tile' (fused per-tile kernel, widths <= 128)."""

def get_cuda_jet_kernel() -> str:
    """The kernel set by set_cuda_jet_kernel (initially 'tile' when FLUXKERN_CUDA_TILE=1)."""

def set_cpu_loss_kernel(kernel: str) -> None:
    """The CPU block loss: 'tile' (default; fused per-tile kernel, widths <= 128) or 'gemm'."""

def get_cpu_loss_kernel() -> str:
    """The kernel set by set_cpu_loss_kernel (initially 'gemm' when FLUXKERN_CPU_TILE=0)."""

def _call_in_cublas_tf32_scope(fn: Callable[[], _T]) -> _T:
    """Test hook: fn() inside the scope that fluxkern's TF32 GEMMs run in."""
