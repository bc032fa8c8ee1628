"""Backend selection for the fluxkern ops: which backends this build and machine offer, and which
one serves tensors on a device. Re-exported by :mod:`fluxkern.ops`."""

from __future__ import annotations

import torch

from fluxkern import _ext

__all__ = ["BACKENDS", "backends", "resolve_backend"]

BACKENDS = ("torch", "cpu", "cuda")


def backends() -> list[str]:
    """Lists the backends available in this build and on this machine.

    Returns:
        A subset of ``["torch", "cpu", "cuda"]``: "torch" always; "cpu" when the extension is
        built; "cuda" when it was built with CUDA kernels and a GPU is present.
    """
    return list(_BACKENDS)


def _detect_backends() -> tuple[str, ...]:
    out = ["torch"]
    if _ext.available():
        out.append("cpu")
        if _ext.has_cuda_kernels() and torch.cuda.is_available():
            out.append("cuda")
    return tuple(out)


_BACKENDS = _detect_backends()  # fixed for the process; a constant to torch.compile


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """Picks the backend for tensors on ``device``.

    Args:
        backend: None for the fastest available, or one of "torch", "cpu", "cuda".
        device: Device of the input tensors.

    Returns:
        The backend name to use.

    Raises:
        ValueError: Unknown backend, or one that does not serve this device.
        RuntimeError: The backend is not available in this build or on this machine.
    """
    have = _BACKENDS
    if backend is None:
        if device.type in have:
            return device.type
        return "torch"
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "torch":
        return backend
    if backend != device.type:
        raise ValueError(f"backend {backend!r} cannot run tensors on device {device}")
    if backend not in have:
        if not _ext.available():
            why = f"the fluxkern extension is not loaded ({_ext.load_error()})"
        elif device.type == "cuda" and not _ext.has_cuda_kernels():
            why = "this fluxkern build has no CUDA kernels (it was compiled without CUDA)"
        else:
            why = "no CUDA device is present"
        raise RuntimeError(f"backend {backend!r} is not available: {why}; available: {list(have)}")
    return backend
