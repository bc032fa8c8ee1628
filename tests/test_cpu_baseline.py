"""The baseline x86-64 builds of the CPU kernels (the ones a CPU without AVX2 + FMA runs).

This machine runs the AVX2 + FMA builds by default; FLUXKERN_CPU_BASELINE=1 makes the process
use the baseline builds, so this test reruns the kernel test files that compare the fused CPU
kernels with their torch twins (jet, tile loss, L-BFGS direction) in a subprocess with it set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fluxkern

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.skipif("cpu" not in fluxkern.backends(), reason="needs the CPU build")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["FLUXKERN_CPU_BASELINE"] = "1"
    return env


def test_baseline_variant_is_selected() -> None:
    code = "import json, fluxkern; print(json.dumps(fluxkern.build_info()['cpu_kernels']))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]).startswith("baseline")


def test_baseline_kernels_match_twins() -> None:
    files = ["test_loss_tile.py", "test_lbfgs.py", "test_jet.py"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *files],
        cwd=HERE,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def _has_avx512() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512f" in flags and " avx512dq" in flags


@pytest.mark.skipif(not _has_avx512(), reason="the AVX-512 builds run only on an AVX-512 CPU")
def test_avx2_tile_kernels_match_twins_on_avx512_cpu() -> None:
    # An AVX-512 CPU runs the 64-byte builds of the tile loss and jet kernels where the padding
    # allows; FLUXKERN_CPU_NO_AVX512=1 makes it run their AVX2 builds, which CPUs without
    # AVX-512 run.
    env = dict(os.environ)
    env["FLUXKERN_CPU_NO_AVX512"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
        + ["test_loss_tile.py", "test_jet_tile.py"],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
