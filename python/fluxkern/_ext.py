"""Loads the compiled extension, if it was built, and reports what it offers."""

from __future__ import annotations

import importlib
from typing import Any

import torch

__all__ = ["available", "build_info", "load_error", "has_cuda_kernels", "module"]

_module: Any = None
_error: str | None = None

try:  # torch must be imported first: the extension links against libtorch.
    _module = importlib.import_module("fluxkern._C")
except ImportError as exc:  # pragma: no cover - exercised only without a build
    _error = f"{type(exc).__name__}: {exc}"


def available() -> bool:
    """Returns True when the compiled extension loaded and registered the fluxkern ops."""
    return _module is not None and hasattr(torch.ops.fluxkern, "mlp_jet")


def module() -> Any:
    """Returns the compiled module ``fluxkern._C`` (None when it is not built)."""
    return _module


def load_error() -> str | None:
    """Returns why the extension did not load, or None if it loaded."""
    return _error


def build_info() -> dict[str, Any]:
    """Returns compiler, threads, parallel backend and CUDA architectures of the build.

    Returns:
        A dict; empty with key ``"error"`` when the extension is not built.
    """
    if _module is None:
        return {"error": _error}
    return dict(_module.build_info())


_HAS_CUDA_KERNELS = bool(_module is not None and _module.build_info().get("cuda"))


def has_cuda_kernels() -> bool:
    """Returns True when the extension was compiled with its CUDA kernels."""
    return _HAS_CUDA_KERNELS
