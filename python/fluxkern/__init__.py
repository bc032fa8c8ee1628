"""fluxkern: fused PyTorch ops for physics-constrained neural PDE solvers in flux form."""

from __future__ import annotations

from fluxkern import geometry, optim, problems, training
from fluxkern._ext import ExtensionLoadWarning, build_info
from fluxkern._version import __version__
from fluxkern.api import backends, jet
from fluxkern.blocks import Constraint, Objective
from fluxkern.expr import cos, data, exp, inputs, outputs, sin, tanh
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.nn import MLP, Sin
from fluxkern.observations import observe, read_observations
from fluxkern.problems import Sample, problem
from fluxkern.settings import (
    cpu_kernel,
    cuda_kernel,
    get_cpu_kernel,
    get_cuda_kernel,
    get_matmul_precision,
    matmul_precision,
    set_cpu_kernel,
    set_cuda_kernel,
    set_matmul_precision,
)
from fluxkern.solver import solve
from fluxkern.training import (
    Callback,
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    EpochFunction,
    EpochRecord,
    History,
    Progress,
    Resample,
    StopTraining,
    TimeBudget,
    Trainer,
)
from fluxkern.unknowns import unknown

__all__ = [
    "MLP",
    "AugmentedLagrangian",
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "Constraint",
    "EarlyStopping",
    "EpochFunction",
    "EpochRecord",
    "ExtensionLoadWarning",
    "History",
    "Objective",
    "Progress",
    "Resample",
    "Sample",
    "Sin",
    "StopTraining",
    "TimeBudget",
    "Trainer",
    "__version__",
    "backends",
    "build_info",
    "cos",
    "cpu_kernel",
    "cuda_kernel",
    "data",
    "exp",
    "get_cpu_kernel",
    "get_cuda_kernel",
    "get_matmul_precision",
    "geometry",
    "optim",
    "problem",
    "problems",
    "read_observations",
    "solve",
    "inputs",
    "jet",
    "matmul_precision",
    "observe",
    "outputs",
    "set_cpu_kernel",
    "set_cuda_kernel",
    "set_matmul_precision",
    "sin",
    "tanh",
    "training",
    "unknown",
]
