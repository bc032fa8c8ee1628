"""Loads the compiled extension, if it was built, and reports what it offers.

Without a compiled file (a pure-torch install) fluxkern is silent and runs on the pure-torch
backend. A compiled file that exists but does not load (built against another torch, another
Python, or damaged) gives one :class:`ExtensionLoadWarning` at import, with the loader's message
and how to rebuild; ``fluxkern.backends()`` is then ``["torch"]``.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from typing import Any

import torch

__all__ = [
    "ExtensionLoadWarning",
    "available",
    "build_info",
    "has_cuda_kernels",
    "load_error",
    "module",
]


class ExtensionLoadWarning(RuntimeWarning):
    """fluxkern's compiled extension exists but did not load; the pure-torch backend is used."""


REBUILD_HINT = (
    "rebuild it against this torch from the source tree: `pip install --no-build-isolation -e .` "
    "(development) or `pip install .` (README.md, section Install)"
)

_module: Any = None
_error: str | None = None


def _load() -> tuple[Any, str | None]:
    """Imports ``fluxkern._C``: (module, None), or (None, why) when it is absent or broken."""
    spec = importlib.util.find_spec("fluxkern._C")
    if spec is None:  # no compiled file: a pure-torch install, silently
        return None, "ModuleNotFoundError: fluxkern._C is not built (pure-torch install)"
    try:  # torch is imported first (above): the extension links against libtorch.
        return importlib.import_module("fluxkern._C"), None
    except Exception as exc:  # ImportError from the loader; anything its initialisation raises
        error = f"{type(exc).__name__}: {exc}"
    warnings.warn(
        f"fluxkern: the compiled extension {spec.origin} did not load with torch "
        f"{torch.__version__} ({error}). The fused 'cpu'/'cuda' backends are off and every op "
        f"runs on the slower pure-torch backend; {REBUILD_HINT}.",
        ExtensionLoadWarning,
        stacklevel=2,
    )
    return None, error


_module, _error = _load()


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
