"""The fused per-tile CUDA forward of the jet, run on the CPU through the emulation header.

csrc/kernels/jet_tile_kernel.cuh is compiled by g++ with csrc/kernels/cuda_emulation.h (blocks as
std::threads, __syncthreads() as a std::barrier, dynamic shared memory filled with NaN bytes) and
called through ctypes (tests/cpp/jet_tile_emulated.cpp). Its y, J and every slot of every saved
layer buffer are compared with an independent float64 torch oracle written here from DESIGN.md
section 3 and the layout of kernels/jet_cpu.h, and, in float64, with the CPU op's own outputs.
This checks the kernel's indexing, tiling, synchronisation and arithmetic; what it cannot check
is anything specific to a GPU (nvcc's code generation, real shared-memory limits, timing):
tests/test_cuda.py runs the same kernel on a GPU.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

import pytest
import torch

import fluxkern
from fluxkern import _ext, reference
from matrix import TOL, rel_err

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SOURCE = os.path.join(ROOT, "tests", "cpp", "jet_tile_emulated.cpp")
ACTIVATIONS = {"tanh": 0, "sin": 1, "silu": 2}  # fluxkern::Activation
DTYPES = {torch.float32: 0, torch.float64: 1}
H100_SMEM = 227 * 1024  # cudaDevAttrMaxSharedMemoryPerBlockOptin of an H100 (bytes)
A100_SMEM = 163 * 1024

pytestmark = pytest.mark.skipif(
    shutil.which("g++") is None, reason="g++ is needed to build the emulated tile kernel"
)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("tile") / "jet_tile_emulated.so")
    cmd = ["g++", "-std=c++20", "-O1", "-pthread", "-shared", "-fPIC", "-Wall", "-Wextra"]
    cmd += ["-Werror", "-I", os.path.join(ROOT, "csrc"), SOURCE, "-o", out]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    so = ctypes.CDLL(out)
    so.fk_jet_tile_forward_emulated.restype = ctypes.c_int
    return so


def make_mlp(d, widths, m, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    sizes = [d, *widths, m]
    ws = [
        torch.randn(o, i, generator=g, dtype=torch.float64) * (1.5 / i**0.5)
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    bs = [torch.randn(o, generator=g, dtype=torch.float64) * 0.3 for o in sizes[1:]]
    shift = torch.linspace(-0.3, 0.4, d, dtype=torch.float64)
    scale = torch.linspace(0.5, 1.7, d, dtype=torch.float64)
    return shift, scale, ws, bs


def second_derivative(act, z, s, ds):
    if act == "tanh":
        return -2 * s * ds
    if act == "sin":
        return -torch.sin(z)
    sig = torch.sigmoid(z)
    return sig * (1 - sig) * (2 + z * (1 - 2 * sig))


def oracle(x, shift, scale, ws, bs, act):
    """y [N, m], J [N, m, d] and the saved layer buffers [2d + 3, N, W_l], from DESIGN.md 3."""
    fn = reference.activation_and_derivative(act)
    n = x.shape[0]
    h = (x - shift) / scale  # [N, d]
    tangent = None  # [N, W, d]
    layers = []
    for layer, (a, b) in enumerate(zip(ws[:-1], bs[:-1], strict=True)):
        z = h @ a.t() + b  # [N, W]
        if layer == 0:
            zt = (a / scale).unsqueeze(0).expand(n, -1, -1)  # [N, W, d]
        else:
            zt = torch.einsum("wk,nkj->nwj", a, tangent)
        s, ds = fn(z)
        t = ds.unsqueeze(-1) * zt
        slots = [ds, *zt.unbind(-1), s, *t.unbind(-1), second_derivative(act, z, s, ds)]
        layers.append(torch.stack(slots))  # [2d + 3, N, W]
        h, tangent = s, t
    y = h @ ws[-1].t() + bs[-1]
    jac = torch.einsum("ow,nwj->noj", ws[-1], tangent)
    return y, jac, layers


def ptr(t):
    return ctypes.c_void_p(t.data_ptr())


def run_tile(
    lib, x, shift, scale, ws, bs, act, max_tile=32, min_tile=8, smem=H100_SMEM, threads=256
):
    """The emulated kernel's (y, J, per-layer saved buffers, tile used), or None if refused."""
    n, d = x.shape
    m, widths = ws[-1].shape[0], [w.shape[0] for w in ws[:-1]]
    dtype = x.dtype
    y = torch.full((n, m), float("nan"), dtype=dtype)
    jac = torch.full((n, m, d), float("nan"), dtype=dtype)
    saved = torch.full((sum((2 * d + 3) * n * w for w in widths),), float("nan"), dtype=dtype)
    keep = [t.contiguous() for t in (x, shift, scale, *ws, *bs)]
    x, shift, scale = keep[:3]
    wts, bias = keep[3 : 3 + len(ws)], keep[3 + len(ws) :]
    arr = ctypes.c_void_p * len(ws)
    widths_c = (ctypes.c_int64 * len(widths))(*widths)
    tile = ctypes.c_int(-1)
    rc = lib.fk_jet_tile_forward_emulated(
        DTYPES[dtype], ACTIVATIONS[act], ctypes.c_int64(n), ctypes.c_int64(d), ctypes.c_int64(m),
        ctypes.c_int64(len(widths)), widths_c, ptr(x), ptr(shift), ptr(scale),
        arr(*[t.data_ptr() for t in wts]), arr(*[t.data_ptr() for t in bias]), ptr(saved),
        ptr(y), ptr(jac), max_tile, min_tile, ctypes.c_int64(smem), threads, ctypes.byref(tile),
    )  # fmt: skip
    assert rc in (0, 1), f"launcher error {rc}"
    if rc == 1:
        assert tile.value == 0
        return None
    layers, offset = [], 0
    for w in widths:
        size = (2 * d + 3) * n * w
        layers.append(saved[offset : offset + size].view(2 * d + 3, n, w))
        offset += size
    return y, jac, layers, tile.value


def check_case(lib, n, d, widths, m, act, dtype, seed=0, **launch):
    shift, scale, ws, bs = make_mlp(d, widths, m, dtype, seed)
    g = torch.Generator().manual_seed(seed + 100)
    x = torch.rand(n, d, generator=g, dtype=torch.float64) * 4 - 2  # [N, d]
    # the oracle in float64 on the same (rounded) values the kernel sees
    args = [t.to(dtype) for t in (x, shift, scale)], [w.to(dtype) for w in ws]
    (x_t, shift_t, scale_t), ws_t = args
    bs_t = [b.to(dtype) for b in bs]
    got = run_tile(lib, x_t, shift_t, scale_t, ws_t, bs_t, act, **launch)
    assert got is not None, "the plan refused a shape it should serve"
    y, jac, layers, tile = got
    up = [t.double() for t in (x_t, shift_t, scale_t)]
    y64, jac64, layers64 = oracle(*up, [w.double() for w in ws_t], [b.double() for b in bs_t], act)
    tol = TOL[dtype]
    assert y.shape == (n, m) and jac.shape == (n, m, d)
    if n == 0:
        return tile
    assert torch.isfinite(y).all() and torch.isfinite(jac).all()
    assert rel_err(y, y64) < tol and rel_err(jac, jac64) < tol
    for layer, (buf, buf64) in enumerate(zip(layers, layers64, strict=True)):
        assert torch.isfinite(buf).all(), f"layer {layer}: unwritten entries"
        for slot in range(2 * d + 3):
            err = rel_err(buf[slot], buf64[slot])
            assert err < tol, f"layer {layer} slot {slot}: rel err {err:.2e}"
    if dtype == torch.float64 and _ext.available():
        with fluxkern.cpu_kernel("gemm"):  # the CPU path that saves the layer buffers
            yc, jc, saved_c = torch.ops.fluxkern.mlp_jet(x_t, shift_t, scale_t, ws_t, bs_t, act)
        assert rel_err(y, yc) < tol and rel_err(jac, jc) < tol
        assert rel_err(torch.cat([b.reshape(-1) for b in layers]), saved_c) < tol
    return tile


# (N, d, hidden widths, m): N 0, 1, 37 and 300 (not multiples of the tile), varying widths,
# depth 1 and 3, widths 5, 33, 64 and 128, the largest d (8) and m (32).
SHAPES = [
    (37, 2, [33, 64, 5], 3),
    (300, 1, [128], 2),
    (1, 3, [5], 1),
    (37, 8, [16], 32),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}d{}w{}m{}".format(*s))
def test_tile_kernel_matches_oracle(lib, shape, act, dtype):
    n, d, widths, m = shape
    tile = check_case(lib, n, d, widths, m, act, dtype)
    assert tile == 32


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_tile_kernel_wide_and_deep(lib, dtype):
    # Widths 128, 64, 128 and d 3: the largest shared memory of these tests. In float64 on an
    # H100 the tile shrinks: staged weights 128 x 65 (the largest W_{l-1} (W_l | 1)) and bias 128
    # fixed, 2 buffers of 4 rows of 129 per point.
    tile = check_case(lib, 300, 3, [128, 64, 128], 4, "silu", dtype, seed=3)
    fixed, per_point = (128 * 65 + 128) * 8, 2 * 4 * 129 * 8
    assert tile == (32 if dtype == torch.float32 else (H100_SMEM - fixed) // per_point)


def test_empty_input_launches_nothing(lib):
    assert check_case(lib, 0, 2, [33], 3, "tanh", torch.float64) == 32


@pytest.mark.parametrize("max_tile", [7, 13])
def test_tiles_that_do_not_fill_the_thread_rows(lib, max_tile):
    # P = 7: fewer points than the 8 thread rows of a wide layer; P = 13: 300 = 23 * 13 + 1.
    tile = check_case(lib, 300, 2, [64, 33], 3, "tanh", torch.float64, max_tile=max_tile,
                      min_tile=1)  # fmt: skip
    assert tile == max_tile


def test_blocks_of_64_threads(lib):
    # The kernel maps threads from blockDim.x: 2 warps hold P <= 8 points.
    tile = check_case(lib, 37, 2, [40, 64], 3, "sin", torch.float32, max_tile=8, threads=64)
    assert tile == 8


def test_shared_memory_limit_shrinks_the_tile(lib):
    # float32, d 2, width 128 twice: 2 * 3 * 129 * P + 128 * 129 + 128 elements of 4 bytes.
    per_point, fixed = 2 * 3 * 129 * 4, (128 * 129 + 128) * 4
    limit = fixed + 20 * per_point + 100
    assert check_case(lib, 37, 2, [128, 128], 3, "tanh", torch.float32, smem=limit) == 20


@pytest.mark.parametrize(
    "d,widths,m,dtype,smem",
    [
        (9, [16], 3, torch.float32, H100_SMEM),  # d > 8
        (2, [129], 3, torch.float32, H100_SMEM),  # width > 128
        (2, [64, 129], 3, torch.float32, H100_SMEM),
        (2, [16], 33, torch.float32, H100_SMEM),  # m > 32
        (8, [128, 128], 3, torch.float64, H100_SMEM),  # fits only P = 5 < 8: falls back
        (2, [128, 128], 3, torch.float32, 60 * 1024),  # the weights alone need 66 KB
    ],
)
def test_plan_refuses_what_it_cannot_serve(lib, d, widths, m, dtype, smem):
    shift, scale, ws, bs = make_mlp(d, widths, m, dtype, 0)
    x = torch.rand(10, d, dtype=dtype)
    cast = [t.to(dtype) for t in (shift, scale)]
    got = run_tile(lib, x, *cast, [w.to(dtype) for w in ws], [b.to(dtype) for b in bs], "tanh",
                   smem=smem)  # fmt: skip
    assert got is None


def test_float64_width_128_fits_an_a100_only_with_small_d(lib):
    # d 1, two layers of 128 in float64 on an A100's 163 KB: the largest tile that fits.
    tile = check_case(lib, 37, 1, [128, 128], 2, "tanh", torch.float64, smem=A100_SMEM)
    per_point, fixed = 2 * 2 * 129 * 8, (128 * 129 + 128) * 8
    assert tile == min(32, (A100_SMEM - fixed) // per_point) and tile >= 8
