"""fluxkern: fused PyTorch ops for physics-constrained neural PDE solvers in flux form."""

from __future__ import annotations

from fluxkern import geometry, problems
from fluxkern._ext import build_info
from fluxkern.api import backends, jet
from fluxkern.blocks import Constraint, Objective
from fluxkern.expr import cos, data, exp, inputs, outputs, sin, tanh
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.nn import MLP, Sin
from fluxkern.solver import solve

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "AugmentedLagrangian",
    "Constraint",
    "Objective",
    "Sin",
    "__version__",
    "backends",
    "build_info",
    "cos",
    "data",
    "exp",
    "geometry",
    "problems",
    "solve",
    "inputs",
    "jet",
    "outputs",
    "sin",
    "tanh",
]
