"""The test matrix: devices, dtypes, backends and tolerances, defined once for every test file.

Tolerances:
    float64: 1e-10 relative (DESIGN.md section 6). Measured errors are ~1e-15.
    float32: 2e-5 relative against a float64 reference. Float32 rounding (unit 6e-8) grows through
        the depth of the network and the W-term dot products of every layer; the measured error at
        the shapes tested is ~5e-7, so 2e-5 leaves room for deeper/wider cases without hiding a
        wrong formula (a wrong derivative term shows up at 1e-2 or worse).
"""

from __future__ import annotations

import os

import torch

import fluxkern

__all__ = ["DEVICES", "DTYPES", "FUSED_BACKENDS", "TOL", "rel_err", "device_backends"]

# CUDA tests run where the build has CUDA kernels and a GPU is present (bench/gpu_check.sh sets
# FLUXKERN_TEST_CUDA=1 to make a missing GPU an error instead of a skip).
_HAVE_CUDA = "cuda" in fluxkern.backends()
if os.environ.get("FLUXKERN_TEST_CUDA") == "1" and not _HAVE_CUDA:
    raise RuntimeError("FLUXKERN_TEST_CUDA=1 but the cuda backend is not available")

DEVICES: list[str] = ["cpu"] + (["cuda"] if _HAVE_CUDA else [])
DTYPES: list[torch.dtype] = [torch.float32, torch.float64]
TOL: dict[torch.dtype, float] = {torch.float64: 1e-10, torch.float32: 2e-5}

# Fused backends per device (the "torch" twin runs everywhere and is the oracle).
FUSED_BACKENDS: dict[str, str] = {"cpu": "cpu", "cuda": "cuda"}


def device_backends() -> list[tuple[str, str]]:
    """(device, backend) pairs to test: every fused backend and the torch twin on each device."""
    out = []
    for dev in DEVICES:
        if FUSED_BACKENDS[dev] in fluxkern.backends():
            out.append((dev, FUSED_BACKENDS[dev]))
        out.append((dev, "torch"))
    return out


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative error ||a - b|| / max(||b||, tiny), computed in float64."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))
