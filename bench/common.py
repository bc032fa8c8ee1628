"""Shared helpers of the benchmark scripts: machine facts, timing, the GEMM peak, FLOP model."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "cpu_model",
    "datasheet_peak_gflops",
    "defaults_trainer",
    "gemm_peak_gflops",
    "jet_step_flops",
    "machine_info",
    "print_table",
    "time_call",
]


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform says."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """Machine, versions and thread counts to print next to every number."""
    import fluxkern

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "fluxkern": fluxkern.__version__,
        "fluxkern_build": {k: v for k, v in fluxkern.build_info().items() if k != "parallel_info"},
        "cuda_jet_kernel": fluxkern.get_cuda_kernel(),
        "matmul_precision": fluxkern.get_matmul_precision(),
        "date": time.strftime("%Y-%m-%d"),
    }
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def defaults_trainer(problem: Any, seed: int, epochs: int, **options: Any) -> Any:
    """A Trainer of `problem` with its defaults (what `fluxkern solve` runs) and `options`,
    quiet and without the run's own checks (no unseen-point check, no automatic redraws), so
    that runs differ only by what `options` changes."""
    from fluxkern.solver import effective_options, make_trainer

    opts = effective_options(
        problem,
        epochs=epochs,
        seed=seed,
        progress=False,
        plots=False,
        unseen_check=False,
        resample_auto=False,
        **options,
    )
    return make_trainer(problem, opts)


def sync(device: str) -> None:
    """torch.cuda.synchronize() on cuda; nothing on the CPU."""
    if device == "cuda":
        torch.cuda.synchronize()


def time_call(
    fn: Callable[[], Any],
    device: str = "cpu",
    warmup: int = 3,
    min_time: float = 1.0,
    max_reps: int = 200,
) -> float:
    """Median wall time of fn() in seconds, after warm-up, synchronising on GPU."""
    for _ in range(warmup):
        fn()
    sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gemm_peak_gflops(dtype: torch.dtype, device: str = "cpu", n: int = 2048) -> float:
    """Measured rate of a large square GEMM through torch, in GFLOP/s (the practical peak)."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    c = torch.empty(n, n, dtype=dtype, device=device)
    t = time_call(lambda: torch.mm(a, b, out=c), device=device, min_time=1.0)
    return 2.0 * n**3 / t / 1e9


# Datasheet peaks of the plain (SIMT, non-tensor-core) FP32 and FP64 datapaths, in GFLOP/s, by a
# substring of torch.cuda.get_device_name(); the first match wins, so the specific names come first.
_DATASHEET_GFLOPS: list[tuple[str, float, float]] = [
    ("H100 PCIe", 51_200, 25_600),
    ("H100 NVL", 60_000, 30_000),
    ("H100", 66_900, 33_500),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("H200 NVL", 60_000, 30_000),
    ("H200", 66_900, 33_500),  # SXM5
    ("A100", 19_500, 9_700),
]


def datasheet_peak_gflops(dtype: torch.dtype, device: str = "cpu") -> float | None:
    """The card's datasheet FP32 / FP64 SIMT peak in GFLOP/s, or None (CPU, unknown card)."""
    if device != "cuda" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, fp32, fp64 in _DATASHEET_GFLOPS:
        if key in name:
            return fp64 if dtype == torch.float64 else fp32
    return None


def jet_step_flops(d: int, width: int, depth: int, m: int) -> float:
    """FLOPs per point of loss + parameter gradient (DESIGN.md section 5)."""
    return 4 * d * width + 6 * (1 + d) * ((depth - 1) * width**2 + m * width)


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Prints rows as a markdown table and returns its text."""
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for r in rows:
        cells = [str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    return text


def dump_json(path: str, payload: dict[str, Any]) -> None:
    """Writes payload as JSON, creating the folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=2)
