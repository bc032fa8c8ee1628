"""fluxkern: fused PyTorch ops for physics-constrained neural PDE solvers in flux form."""

from __future__ import annotations

from fluxkern._ext import build_info
from fluxkern.api import backends, jet
from fluxkern.nn import MLP, Sin

__version__ = "0.1.0"

__all__ = ["MLP", "Sin", "backends", "build_info", "jet", "__version__"]
