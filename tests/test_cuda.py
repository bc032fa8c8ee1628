"""CUDA-specific behaviour of the jet op: registration, clear errors, determinism, the current
stream, the device guard, opcheck / gradcheck / compile on cuda, large N and 64-bit indexing.

Values against the oracles on cuda (odd shapes, float32 and float64) are in test_jet.py, whose
device matrix (tests/matrix.py) includes "cuda" when the cuda backend is available. The tests
here that need a GPU are skipped without one; bench/gpu_check.sh runs them with
FLUXKERN_TEST_CUDA=1, which makes a missing cuda backend an error (see matrix.py).
"""

from __future__ import annotations

import copy

import pytest
import torch

import fluxkern
from fluxkern import _ext, ops, reference
from fluxkern.nn import MlpSpec
from fluxkern.program import split_op_args
from matrix import TOL, rel_err

HAVE_CUDA = "cuda" in fluxkern.backends()
needs_gpu = pytest.mark.skipif(
    not HAVE_CUDA, reason="needs the cuda backend (a CUDA build of fluxkern and a GPU)"
)
needs_ext = pytest.mark.skipif(not _ext.available(), reason="the extension is not built")
ACTS = ["tanh", "sin", "silu"]
JET_OPS = ("mlp_jet", "mlp_jet_backward")
ALL_OPS = (*JET_OPS, "block_loss")


def make_net(d, m, width, depth, act, dtype=torch.float64, device="cuda", seed=0):
    torch.manual_seed(seed)
    net = fluxkern.MLP(
        d,
        m,
        width,
        depth,
        act,
        input_shift=torch.linspace(-0.3, 0.4, d).tolist(),
        input_scale=torch.linspace(0.5, 1.7, d).tolist(),
        dtype=dtype,
        device=device,
    )
    with torch.no_grad():  # non-zero biases so that the bias path is exercised
        for layer in net.layers:
            layer.bias.normal_(0, 0.3)
    return net


def loss_and_grads(net, x, backend, seed=1):
    """A random linear functional of (y, J) and its gradient w.r.t. parameters and x.

    The functional is drawn on the CPU (the CUDA generator gives other numbers for the same seed),
    so that the same seed gives the same functional on every device."""
    x = x.detach().requires_grad_(True)
    y, jac = fluxkern.jet(net, x, backend=backend)
    g = torch.Generator().manual_seed(seed)
    gy = torch.randn(y.shape, generator=g, dtype=y.dtype).to(y.device)  # [N, m]
    gj = torch.randn(jac.shape, generator=g, dtype=y.dtype).to(y.device)  # [N, m, d]
    loss = (y * gy).sum() + (jac * gj).sum()
    grads = torch.autograd.grad(loss, [*net.parameters(), x])
    return y, jac, grads


# --- any build with the extension -------------------------------------------------------------


@needs_ext
@pytest.mark.parametrize("op", ALL_OPS)
def test_every_op_has_a_cuda_kernel_registered(op):
    # The real kernel in a CUDA build, the stub that explains itself in a CPU-only build.
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"fluxkern::{op}", "CUDA")


def _cpu_args():
    net = make_net(2, 3, 5, 2, "tanh", device="cpu")
    s = net.spec()
    x = torch.rand(4, 2, dtype=torch.float64)  # [N, d]
    return x, s.shift, s.scale, [w.detach() for w in s.weights], [b.detach() for b in s.biases]


@needs_ext
@pytest.mark.skipif(_ext.has_cuda_kernels(), reason="checks the build without CUDA kernels")
def test_build_without_cuda_kernels_refuses_cuda_dispatch_clearly():
    # cpu tensors sent through the CUDA key reach exactly what a cuda tensor would reach.
    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
    with pytest.raises(RuntimeError, match="built without CUDA kernels.*backend='torch'"):
        torch.ops.fluxkern.mlp_jet.default.redispatch(keys, *_cpu_args(), "tanh")


@needs_ext
@pytest.mark.skipif(not _ext.has_cuda_kernels(), reason="checks the CUDA glue of a CUDA build")
def test_cuda_kernel_refuses_cpu_tensors_clearly():
    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
    with pytest.raises(RuntimeError, match="the CUDA kernel was called with x on cpu"):
        torch.ops.fluxkern.mlp_jet.default.redispatch(keys, *_cpu_args(), "tanh")


@needs_ext
@pytest.mark.skipif(_ext.has_cuda_kernels(), reason="checks the build without CUDA kernels")
def test_build_without_cuda_kernels_refuses_cuda_block_loss_clearly():
    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
    with pytest.raises(RuntimeError, match="block_loss got cuda tensors, but fluxkern was built"):
        torch.ops.fluxkern.block_loss.default.redispatch(keys, *block_args(4, device="cpu"))


@needs_ext
@pytest.mark.skipif(not _ext.has_cuda_kernels(), reason="checks the CUDA glue of a CUDA build")
def test_cuda_block_loss_refuses_cpu_tensors_clearly():
    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
    with pytest.raises(RuntimeError, match="the CUDA kernel was called with x on cpu"):
        torch.ops.fluxkern.block_loss.default.redispatch(keys, *block_args(4, device="cpu"))


@needs_ext
@pytest.mark.skipif(not _ext.has_cuda_kernels(), reason="checks the CUDA glue of a CUDA build")
def test_cuda_glue_refuses_cpu_tensors_also_with_tile_and_tf32():
    # The settings do not bypass the argument checks of the CUDA entry points.
    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
    with fluxkern.cuda_kernel("tile"), fluxkern.matmul_precision("tf32"):
        with pytest.raises(RuntimeError, match="the CUDA kernel was called with x on cpu"):
            torch.ops.fluxkern.mlp_jet.default.redispatch(keys, *_cpu_args(), "tanh")


# --- on a GPU ---------------------------------------------------------------------------------


@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("act", ACTS)
def test_gradients_are_bitwise_deterministic(act, dtype):
    net = make_net(3, 4, 40, 3, act, dtype=dtype)
    x = torch.rand(4097, 3, dtype=dtype, device="cuda") * 2 - 1
    first = loss_and_grads(net, x, "cuda")
    second = loss_and_grads(net, x, "cuda")
    flat1 = [first[0], first[1], *first[2]]
    flat2 = [second[0], second[1], *second[2]]
    for a, b in zip(flat1, flat2, strict=True):
        assert torch.equal(a, b)


@needs_gpu
def test_cuda_tensor_with_cpu_backend_is_refused():
    net = make_net(2, 3, 8, 2, "tanh")
    x = torch.rand(5, 2, dtype=torch.float64, device="cuda")
    with pytest.raises(ValueError, match="backend 'cpu' cannot run tensors on device cuda"):
        fluxkern.jet(net, x, backend="cpu")


@needs_gpu
def test_mixed_devices_are_refused_with_both_named():
    x, shift, scale, ws, bs = _cpu_args()
    with pytest.raises(RuntimeError, match=r"weights\[0\] is on cpu but x is on cuda"):
        torch.ops.fluxkern.mlp_jet(x.cuda(), shift.cuda(), scale.cuda(), ws, bs, "tanh")
    y, jac, saved = torch.ops.fluxkern.mlp_jet(x, shift, scale, ws, bs, "tanh")
    with pytest.raises(RuntimeError, match="must be on the device of x"):
        torch.ops.fluxkern.mlp_jet_backward(
            y,
            jac,
            x.cuda(),
            shift.cuda(),
            scale.cuda(),
            [w.cuda() for w in ws],
            [b.cuda() for b in bs],
            "tanh",
            saved,
        )


@needs_gpu
@pytest.mark.parametrize("kernel", ["gemm", "tile"])
@pytest.mark.parametrize("act", ACTS)
def test_runs_on_the_current_stream(act, kernel):
    """Work queued on a side stream behind a long sleep must be seen by the op on that stream.

    If any kernel of the op ran on another stream it would read the layer buffers (or x) before
    the side stream has written them, and the result would differ.
    """
    with fluxkern.cuda_kernel(kernel):
        _check_current_stream(act)


def _check_current_stream(act):
    net = make_net(2, 3, 48, 3, act)
    x_src = torch.rand(20000, 2, dtype=torch.float64, device="cuda")
    y_ref, jac_ref, g_ref = loss_and_grads(net, x_src, "cuda")
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # ~25 ms of GPU time before anything else on `side`
        x = x_src * 1.0  # written on `side` after the sleep
        y, jac, g = loss_and_grads(net, x, "cuda")
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    # Not bitwise: cuBLAS may pick other kernels on another stream. A stream race gives O(1).
    assert rel_err(y, y_ref) < 1e-12 and rel_err(jac, jac_ref) < 1e-12
    for a, b in zip(g, g_ref, strict=True):
        assert rel_err(a, b) < 1e-12


@needs_gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_device_guard_runs_on_the_tensors_device():
    net = make_net(2, 3, 16, 2, "tanh", device="cuda:1")
    x = torch.rand(300, 2, dtype=torch.float64, device="cuda:1")
    with torch.cuda.device(0):
        y, jac, g = loss_and_grads(net, x, "cuda")
    assert y.device == torch.device("cuda:1")
    y_ref, jac_ref, g_ref = loss_and_grads(net, x, "torch")
    assert rel_err(y, y_ref) < TOL[torch.float64] and rel_err(jac, jac_ref) < TOL[torch.float64]
    for a, b in zip(g, g_ref, strict=True):
        assert rel_err(a, b) < TOL[torch.float64]


@needs_gpu
@pytest.mark.parametrize("act", ACTS)
def test_large_n_over_many_grid_strides_matches_cpu(act):
    # 150000 x 24 elements per slot: several grid-stride rounds on any current GPU.
    net = make_net(2, 3, 24, 2, act)
    x = torch.rand(150000, 2, dtype=torch.float64, device="cuda") * 4 - 2
    y, jac, g = loss_and_grads(net, x, "cuda")
    net_cpu = copy.deepcopy(net).cpu()  # the same weights (the CUDA generator draws others)
    y_c, jac_c, g_c = loss_and_grads(net_cpu, x.cpu(), "cpu")
    assert rel_err(y, y_c) < TOL[torch.float64] and rel_err(jac, jac_c) < TOL[torch.float64]
    for a, b in zip(g, g_c, strict=True):
        assert rel_err(a, b) < TOL[torch.float64]


@needs_gpu
def test_64bit_indexing_matches_a_small_run():
    """A layer buffer of more than 2^31 elements takes the kernels' 64-bit index path.

    Rows are independent in y, J and dl/dx, so the first and last rows of the big run must match a
    run on those rows alone (float32; the GEMMs may block differently at the two sizes).
    """
    d, width = 1, 128
    n = (1 << 31) // ((2 * d + 3) * width) + 4096  # (2d + 3) N W > 2^31
    free, _ = torch.cuda.mem_get_info()
    if free < 40 * 2**30:
        pytest.skip(f"needs ~40 GiB of free GPU memory, {free / 2**30:.0f} GiB free")
    net = make_net(d, 2, width, 1, "tanh", dtype=torch.float32)
    x = torch.rand(n, d, device="cuda") * 2 - 1  # [N, d]
    rows = torch.cat([torch.arange(0, 1000), torch.arange(n - 1000, n)]).cuda()
    y, jac, g = loss_and_grads(net, x, "cuda")
    y_big, jac_big, gx_big = y[rows], jac[rows], g[-1][rows]
    del y, jac, g
    # The same random functional restricted to the rows (loss_and_grads draws it on the CPU):
    # regenerate it for the small run.
    gen = torch.Generator().manual_seed(1)
    gy = torch.randn((n, 2), generator=gen)[rows.cpu()].cuda()
    gj = torch.randn((n, 2, d), generator=gen)[rows.cpu()].cuda()
    xs = x[rows].detach().requires_grad_(True)
    ys, js = fluxkern.jet(net, xs, backend="cuda")
    (gx_small,) = torch.autograd.grad((ys * gy).sum() + (js * gj).sum(), [xs])
    tol = 1e-5  # float32 rounding through one hidden layer; a wrong index gives O(1) errors
    assert rel_err(y_big, ys) < tol and rel_err(jac_big, js) < tol
    assert rel_err(gx_big, gx_small) < tol


def _cuda_op_args(act="tanh", n=9, dtype=torch.float64, requires_grad=True):
    net = make_net(2, 3, 6, 2, act, dtype=dtype)
    s = net.spec()
    x = torch.randn(n, 2, dtype=dtype, device="cuda", requires_grad=requires_grad)
    return (
        x,
        s.shift,
        s.scale,
        [w.detach().requires_grad_(requires_grad) for w in s.weights],
        [b.detach().requires_grad_(requires_grad) for b in s.biases],
        act,
    )


@needs_gpu
@pytest.mark.parametrize("act", ACTS)
def test_opcheck_cuda(act):
    torch.library.opcheck(torch.ops.fluxkern.mlp_jet.default, _cuda_op_args(act))
    args = _cuda_op_args(act, requires_grad=False)
    y, jac, saved = torch.ops.fluxkern.mlp_jet(*args)
    torch.library.opcheck(
        torch.ops.fluxkern.mlp_jet_backward.default,
        (torch.randn_like(y), torch.randn_like(jac), *args, saved),
    )


@needs_gpu
@pytest.mark.parametrize("act", ACTS)
def test_gradcheck_cuda_float64(act):
    net = make_net(2, 2, 3, 2, act)
    s = net.spec()
    x = torch.randn(4, 2, dtype=torch.float64, device="cuda", requires_grad=True)
    shift, scale = (t.detach().clone().requires_grad_(True) for t in (s.shift, s.scale))
    ws = [w.detach().clone().requires_grad_(True) for w in s.weights]
    bs = [b.detach().clone().requires_grad_(True) for b in s.biases]

    def f(x, shift, scale, *wb):
        k = len(ws)
        return ops.mlp_jet(x, MlpSpec(shift, scale, wb[:k], wb[k:], act), backend="cuda")

    assert torch.autograd.gradcheck(f, (x, shift, scale, *ws, *bs))


@needs_gpu
def test_torch_compile_fullgraph_matches_eager_cuda():
    net = make_net(2, 3, 16, 3, "tanh", dtype=torch.float32)
    x = torch.rand(50, 2, device="cuda")

    def loss_fn(x):
        y, jac = net.jet(x, backend="cuda")
        return (y**2).sum() + (jac**2).sum()

    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
    eager = loss_fn(x)
    g_eager = torch.autograd.grad(eager, list(net.parameters()))
    got = compiled(x)
    g_got = torch.autograd.grad(got, list(net.parameters()))
    assert torch.allclose(got, eager, rtol=1e-6)
    for a, b in zip(g_got, g_eager, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


@needs_gpu
@pytest.mark.parametrize("act", ACTS)
def test_float32_cuda_close_to_float64_reference(act):
    net = make_net(2, 3, 64, 4, act, dtype=torch.float32)
    x = torch.rand(1000, 2, device="cuda") * 2 - 1
    y, jac = fluxkern.jet(net, x, backend="cuda")
    s = net.spec()
    y64, jac64 = reference.mlp_jet(
        x.double(),
        MlpSpec(
            s.shift.double(),
            s.scale.double(),
            [w.double() for w in s.weights],
            [b.double() for b in s.biases],
            act,
        ),
    )
    assert rel_err(y, y64) < TOL[torch.float32] and rel_err(jac, jac64) < TOL[torch.float32]


# --- the fused block loss on a GPU ------------------------------------------------------------
#
# The op's arguments come from a random monomial table (any residual, column and field indices,
# -1 included), independent of the expression compiler; test_block_loss_augmented_lagrangian_cuda
# runs the compiled tables of a real system end to end. Oracles: the torch twin
# (reference.block_loss, differentiated by autograd) on the same device and the CPU op.

LOSS_DEVICE = "cuda"  # one name, so that the tests' logic can be checked on "cpu" without a GPU
F64, F32 = torch.float64, torch.float32
# (d, m, K, M, R): d inputs, m outputs, K coefficient columns, M monomials, R residuals; K = 0
# (no data), R = 1 and R = 32 (the most) included. Every residual gets monomials (row i % R).
BLOCK_SHAPES = [(2, 3, 2, 12, 4), (3, 4, 0, 7, 1), (1, 1, 3, 40, 32)]


def block_args(
    n,
    d=2,
    m=3,
    k=2,
    n_mono=12,
    n_res=4,
    paired=False,
    pointwise=True,
    dtype=F64,
    device=LOSS_DEVICE,
    act="tanh",
    seed=0,
):
    """Positional arguments of torch.ops.fluxkern.block_loss for N points (pairs when paired).

    Half the residuals squared (C = r^2), half signed; the last one a "sum", the others a
    "mean"; lam in [0.1, 1.1], mu in [0, 2]. Weights and biases require grad.
    """
    g = torch.Generator().manual_seed(seed)
    net = make_net(d, m, 9, 2, act, dtype=F64, device="cpu", seed=seed)
    s = net.spec()
    rows = 2 * n if paired else n
    x = torch.rand(rows, d, generator=g, dtype=F64) * 2 - 1  # [P, d]
    cols = torch.rand(rows, k, generator=g, dtype=F64) * 2 - 1  # [P, K]
    table = torch.empty(n_mono, 5, dtype=torch.int32)  # [M, 5]
    table[:, 0] = torch.arange(n_mono, dtype=torch.int32) % n_res
    table[:, 1] = torch.randint(-1, k, (n_mono,), generator=g, dtype=torch.int32)
    table[:, 2:] = torch.randint(-1, m + m * d, (n_mono, 3), generator=g, dtype=torch.int32)
    coef = torch.randn(n_mono, generator=g, dtype=F64)  # [M]
    lam = 0.1 + torch.rand((n, n_res) if pointwise else (n_res,), generator=g, dtype=F64)
    mu = 2 * torch.rand(n_res, generator=g, dtype=F64)  # [R]
    squared = (torch.arange(n_res) % 2 == 0).to(F64)  # [R]
    red = torch.full((n_res,), 1.0 / max(n, 1), dtype=F64)  # [R]
    red[-1] = 1.0

    def on(t):
        return t.to(device=device, dtype=dtype)

    ws = [on(w.detach()).requires_grad_(True) for w in s.weights]
    bs = [on(b.detach()).requires_grad_(True) for b in s.biases]
    return [
        on(x),
        on(s.shift),
        on(s.scale),
        ws,
        bs,
        act,
        on(cols),
        table.to(device),
        on(coef),
        on(lam),
        on(mu),
        on(squared),
        on(red),
        n_res,
        paired,
    ]


def block_args_as(args, dtype=None, device=None):
    """A copy of block_args on another dtype and / or device (the table stays int32)."""
    out = list(args)

    def move(t):
        kw = {"device": device} if t.dtype == torch.int32 else {"device": device, "dtype": dtype}
        return t.detach().to(**{k: v for k, v in kw.items() if v is not None})

    for i in (0, 1, 2, 6, 7, 8, 9, 10, 11, 12):
        out[i] = move(args[i])
    out[3] = [move(w).requires_grad_(True) for w in args[3]]
    out[4] = [move(b).requires_grad_(True) for b in args[4]]
    return out


def block_run(args, backend):
    """(loss, C, gradients w.r.t. weights and biases) of the op or its twin, through
    fluxkern.ops.block_loss (the positional op arguments unpacked into a program)."""
    loss, c = ops.block_loss(*split_op_args(args), backend=backend)
    params = [*args[3], *args[4]]
    return loss, c, torch.autograd.grad(loss, params)


def assert_block_close(got, want, tol):
    loss, c, grads = got
    loss_w, c_w, grads_w = want
    assert loss.shape == () and c.shape == c_w.shape
    assert rel_err(loss, loss_w) <= tol, (float(loss), float(loss_w))
    assert rel_err(c, c_w) <= tol
    for a, b in zip(grads, grads_w, strict=True):
        assert a.shape == b.shape and rel_err(a, b) <= tol


@needs_gpu
@pytest.mark.parametrize("shape", BLOCK_SHAPES, ids=lambda s: "d{}m{}K{}M{}R{}".format(*s))
@pytest.mark.parametrize("pointwise", [True, False], ids=["pointwise", "global"])
@pytest.mark.parametrize("paired", [False, True], ids=["unpaired", "paired"])
@pytest.mark.parametrize("n", [1, 7, 4097])
def test_block_loss_cuda_float64_matches_twin_and_cpu(n, paired, pointwise, shape):
    d, m, k, n_mono, n_res = shape
    args = block_args(n, d, m, k, n_mono, n_res, paired, pointwise, seed=n + 3 * paired)
    got = block_run(args, LOSS_DEVICE)
    assert got[0].device.type == LOSS_DEVICE and got[1].device.type == LOSS_DEVICE
    assert_block_close(got, block_run(args, "torch"), TOL[F64])
    cpu = block_args_as(args, device="cpu")
    want_cpu = block_run(cpu, "cpu")
    assert_block_close(got, want_cpu, TOL[F64])


@needs_gpu
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("paired", [False, True], ids=["unpaired", "paired"])
def test_block_loss_cuda_float32_close_to_float64_twin(paired, act):
    # TOL[float32] (tests/matrix.py): float32 rounding through the jet and the cubic monomials.
    args = block_args(3001, paired=paired, dtype=F32, act=act, seed=5)
    got = block_run(args, LOSS_DEVICE)
    assert got[0].dtype == F32 and got[1].dtype == F32
    assert all(g.dtype == F32 for g in got[2])
    want = block_run(block_args_as(args, dtype=F64), "torch")
    assert_block_close(got, want, TOL[F32])


@needs_gpu
@pytest.mark.parametrize("dtype", [F32, F64])
def test_block_loss_cuda_large_table_is_read_from_global_memory(dtype):
    # 3000 monomials do not fit the kernel's 48 KiB of staged shared memory (1500 do): both
    # paths of the kernel against the twin.
    for n_mono in (1500, 3000):
        args = block_args(1000, 2, 3, 2, n_mono, 8, dtype=dtype, seed=n_mono)
        want = block_run(block_args_as(args, dtype=F64), "torch")
        assert_block_close(block_run(args, LOSS_DEVICE), want, TOL[dtype])


@needs_gpu
@pytest.mark.parametrize("paired", [False, True], ids=["unpaired", "paired"])
def test_block_loss_cuda_large_n_over_many_grid_strides_matches_cpu(paired):
    # 600000 rows: more than one grid-stride round of one thread per point on any current GPU.
    n = 300_000 if paired else 600_000
    args = block_args(n, paired=paired, seed=11)
    got = block_run(args, LOSS_DEVICE)
    assert_block_close(got, block_run(block_args_as(args, device="cpu"), "cpu"), TOL[F64])


@needs_gpu
@pytest.mark.parametrize("pointwise", [True, False], ids=["pointwise", "global"])
@pytest.mark.parametrize("paired", [False, True], ids=["unpaired", "paired"])
def test_block_loss_cuda_empty_block(paired, pointwise):
    """N = 0: loss 0, C [0, R], zero gradients, as the twin."""
    args = block_args(0, paired=paired, pointwise=pointwise)
    loss, c, grads = got = block_run(args, LOSS_DEVICE)
    assert float(loss.detach()) == 0.0 and c.shape == (0, 4)
    assert all(not g.any() for g in grads)
    assert_block_close(got, block_run(args, "torch"), TOL[F64])


@needs_gpu
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("paired", [False, True], ids=["unpaired", "paired"])
def test_block_loss_cuda_is_bitwise_deterministic(paired, dtype):
    args = block_args(4097, paired=paired, dtype=dtype, seed=13)
    first = block_run(args, LOSS_DEVICE)
    second = block_run(args, LOSS_DEVICE)
    for a, b in zip(
        [first[0], first[1], *first[2]], [second[0], second[1], *second[2]], strict=True
    ):
        assert torch.equal(a, b)


@needs_gpu
@pytest.mark.parametrize("pointwise", [True, False], ids=["pointwise", "global"])
@pytest.mark.parametrize("paired", [False, True], ids=["unpaired", "paired"])
def test_block_loss_opcheck_cuda(paired, pointwise):
    args = block_args(9, paired=paired, pointwise=pointwise, seed=17)
    torch.library.opcheck(torch.ops.fluxkern.block_loss.default, tuple(args))


@needs_gpu
def test_block_loss_cuda_checks_every_tensor_and_the_table():
    args = block_args(5)
    bad = list(args)
    bad[7] = args[7].cpu()  # the table on another device than x
    with pytest.raises(RuntimeError, match=f"table is on cpu but x is on {LOSS_DEVICE}"):
        torch.ops.fluxkern.block_loss(*bad)
    bad = list(args)
    bad[9] = args[9].cpu()
    with pytest.raises(RuntimeError, match=f"lam is on cpu but x is on {LOSS_DEVICE}"):
        torch.ops.fluxkern.block_loss(*bad)
    # The table's entries are checked on the host, also when the table lives on the device.
    bad = list(args)
    bad[7] = args[7].clone()
    bad[7][3, 4] = 3 + 3 * 2  # field m + m d: one past the last
    with pytest.raises(ValueError, match="table row 3 names field 9 of 9"):
        torch.ops.fluxkern.block_loss(*bad)
    bad[7] = args[7].t().contiguous().t()  # a non-contiguous table with the same entries
    assert not bad[7].is_contiguous()
    assert_block_close(block_run(bad, LOSS_DEVICE), block_run(args, LOSS_DEVICE), 0.0)


@needs_gpu
def test_block_loss_runs_on_the_current_stream():
    """As test_runs_on_the_current_stream, for the residual kernel and the loss sum."""
    args = block_args(20000, paired=True, seed=19)
    want = block_run(args, LOSS_DEVICE)
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # ~25 ms of GPU time before anything else on `side`
        late = list(args)
        late[6] = args[6] * 1.0  # cols, written on `side` after the sleep
        late[9] = args[9] * 1.0  # lam
        got = block_run(late, LOSS_DEVICE)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    assert_block_close(got, want, 1e-12)  # a stream race gives O(1) errors


def _al_system(device, dtype=F64):
    """A system with every kind of fused group: blocks on two point sets (one segmented call),
    a paired set (its own call), degree-3 monomials, data, both forms, both multipliers."""
    x, t = fluxkern.inputs("x t")
    u, v = fluxkern.outputs("u v")
    f, k, gd = fluxkern.data("f k g")
    gen = torch.Generator().manual_seed(23)

    def rand(*shape, lo=0.0, hi=1.0):
        return (lo + (hi - lo) * torch.rand(*shape, generator=gen, dtype=F64)).to(device, dtype)

    pts, bnd, ts = rand(500, 2), rand(77, 2), rand(33, 1)
    a = torch.cat([torch.zeros_like(ts), ts], 1)
    b = torch.cat([torch.ones_like(ts), ts], 1)
    terms = [
        fluxkern.Objective("pde", u.d(t) + u * v.d(x) - f, pts, {"f": rand(500)}),
        fluxkern.Constraint("vdef", [v - u.d(x), u**3 - v * u.d(t)], pts),
        fluxkern.Constraint(
            "bc", u - gd, bnd, {"g": rand(77)}, form="signed", multiplier="global", reduction="sum"
        ),
        fluxkern.Constraint(
            "periodic", [u, v, k * u.d(t)], (a, b), {"k": rand(33, lo=0.5, hi=1.5)}, form="signed"
        ),
    ]
    torch.manual_seed(29)
    net = fluxkern.MLP(2, 2, 24, 3, "tanh", dtype=dtype, device=device)
    return net, terms


@needs_gpu
def test_block_loss_augmented_lagrangian_cuda():
    """The library end to end on the device: the AL's loss, gradient, C and dual updates with
    backend "cuda" against backend "torch" on the same device."""
    net, terms = _al_system(LOSS_DEVICE)
    fused = fluxkern.AugmentedLagrangian(net, terms, backend=LOSS_DEVICE)
    twin = fluxkern.AugmentedLagrangian(net, terms, backend="torch")
    for _ in range(2):
        fused.update_multipliers()
        twin.update_multipliers()
    for name, lam in twin.multipliers.items():
        assert rel_err(fused.multipliers[name], lam) <= TOL[F64]
    params = list(net.parameters())
    l_f, l_t = fused(), twin()
    assert rel_err(l_f, l_t) <= TOL[F64]
    for a, b in zip(
        torch.autograd.grad(l_f, params), torch.autograd.grad(l_t, params), strict=True
    ):
        assert rel_err(a, b) <= TOL[F64]
    c_f, c_t = fused.constraint_values(), twin.constraint_values()
    for name, c in c_t.items():
        assert c_f[name].device.type == LOSS_DEVICE and rel_err(c_f[name], c) <= TOL[F64]


# --- TF32 GEMMs (fluxkern.set_matmul_precision) on a GPU ----------------------------------------
#
# TF32 keeps 10 mantissa bits (unit roundoff 2^-11 = 4.9e-4). An emulation on the CPU (the removed
# bench/tf32_emulation.py, bench/results/README.md),
# for this net (d 2, width 64, 4 hidden, m 3, tanh), measured relative errors of
# 5.8e-4 (y) and 5.2e-4 (J) against float64, and 3.7e-4 for a loss gradient. TF32_TOL = 5e-3
# leaves room for the tensor cores' accumulation order and other inputs, and is still far below
# what a wrong formula gives (O(1)).
TF32_TOL = 5e-3


def _fixed_functional_grads(net, x, backend, seed=1):
    """y, J and the gradient of sum(y gy) + sum(J gj) w.r.t. parameters and x, with gy and gj
    drawn in float64 on the CPU (the same functional for every dtype and device)."""
    x = x.detach().requires_grad_(True)
    y, jac = fluxkern.jet(net, x, backend=backend)
    g = torch.Generator().manual_seed(seed)
    gy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y)  # [N, m]
    gj = torch.randn(jac.shape, generator=g, dtype=torch.float64).to(y)  # [N, m, d]
    grads = torch.autograd.grad((y * gy).sum() + (jac * gj).sum(), [*net.parameters(), x])
    return [y, jac, *grads]


def _torch_tf32_state():
    m = torch.backends.cuda.matmul
    return m.allow_tf32, m.fp32_precision, torch.get_float32_matmul_precision()


@needs_gpu
def test_tf32_is_close_to_float64_and_restores_torch_flag():
    net = make_net(2, 3, 64, 4, "tanh", dtype=torch.float32)
    x = torch.rand(8192, 2, device="cuda") * 2 - 1
    want = _fixed_functional_grads(copy.deepcopy(net).double(), x.double(), "torch")
    ieee = _fixed_functional_grads(net, x, "cuda")
    before = _torch_tf32_state()
    with fluxkern.matmul_precision("tf32"):
        tf32 = _fixed_functional_grads(net, x, "cuda")
        assert _torch_tf32_state() == before  # only around fluxkern's own GEMMs
        a = torch.rand(512, 512, device="cuda")
        plain = a @ a  # torch's matmul keeps torch's setting (TF32 off)
        assert rel_err(plain, a.double() @ a.double()) < 1e-5
    assert _torch_tf32_state() == before
    for got, ref in zip(tf32, want, strict=True):
        assert rel_err(got, ref) < TF32_TOL
    for got, ref in zip(ieee, want, strict=True):
        assert rel_err(got, ref) < TOL[torch.float32]
    # TF32 was really used: the GEMM results move by ~1e-4, far more than float32 rounding. (If
    # cuBLAS ever picked non-tensor-core kernels for these shapes, this would fail.)
    assert rel_err(tf32[0], ieee[0]) > 1e-5


@needs_gpu
def test_tf32_does_not_change_float64_or_the_tile_forward():
    net = make_net(3, 2, 40, 3, "silu", dtype=torch.float64)
    x = torch.rand(1000, 3, dtype=torch.float64, device="cuda")
    plain = _fixed_functional_grads(net, x, "cuda")
    with fluxkern.matmul_precision("tf32"):
        again = _fixed_functional_grads(net, x, "cuda")
    for a, b in zip(plain, again, strict=True):
        assert torch.equal(a, b)
    net32 = make_net(3, 2, 40, 3, "silu", dtype=torch.float32)
    with fluxkern.cuda_kernel("tile"):
        y, jac = fluxkern.jet(net32, x.float(), backend="cuda")
        with fluxkern.matmul_precision("tf32"):
            y2, jac2 = fluxkern.jet(net32, x.float(), backend="cuda")
    assert torch.equal(y, y2) and torch.equal(jac, jac2)  # the tile forward has no GEMM


# --- the fused per-tile forward (fluxkern.set_cuda_kernel("tile")) on a GPU ---------------------
#
# Same kernel as tests/test_jet_tile_emulated.py, here on the device: against the default GEMM
# path (y, J, the saved buffers and, through the unchanged backward, every gradient), served
# shapes really launching it, other shapes falling back.

TILE_SHAPES = [  # (N, d, hidden widths, m)
    (0, 2, [33], 3),
    (1, 1, [5], 1),
    (37, 2, [33, 64, 5], 3),
    (4097, 3, [64, 64, 64, 64], 3),
    (300, 8, [16, 128], 32),
]


def _tile_net(d, widths, m, act, dtype, seed=0):
    torch.manual_seed(seed)
    layers = []
    sizes = [d, *widths, m]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b, dtype=dtype, device="cuda"))
        if i < len(widths):
            layers.append(
                {"tanh": torch.nn.Tanh, "silu": torch.nn.SiLU, "sin": fluxkern.Sin}[act]()
            )
    with torch.no_grad():
        for layer in layers[::2]:
            layer.bias.normal_(0, 0.3)
    return torch.nn.Sequential(*layers)


def _op_outputs(net, x, kernel):
    """(y, J, saved) of the op and the gradients of a fixed functional, with `kernel`."""
    from fluxkern.nn import mlp_spec

    s = mlp_spec(net)
    with fluxkern.cuda_kernel(kernel):
        y, jac, saved = torch.ops.fluxkern.mlp_jet(
            x, s.shift, s.scale, list(s.weights), list(s.biases), s.activation
        )
        grads = _fixed_functional_grads(net, x, "cuda")[2:]
    return [y, jac, saved, *grads]


def _tile_kernel_launched(fn):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return any("jet_tile_forward_kernel" in e.name for e in prof.events())


@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", TILE_SHAPES, ids=lambda s: "N{}d{}w{}m{}".format(*s))
def test_tile_forward_matches_gemm_path(shape, act, dtype):
    n, d, widths, m = shape
    net = _tile_net(d, widths, m, act, dtype)
    x = torch.rand(n, d, dtype=dtype, device="cuda") * 4 - 2
    gemm = _op_outputs(net, x, "gemm")
    tile = _op_outputs(net, x, "tile")
    if dtype == torch.float64:
        for a, b in zip(tile, gemm, strict=True):
            assert a.shape == b.shape and rel_err(a, b) < TOL[dtype]
    else:  # both against the float64 GEMM path: float32 rounding differs between the two
        ref = _op_outputs(copy.deepcopy(net).double(), x.double(), "gemm")
        for a, b in zip(tile, ref, strict=True):
            assert a.shape == b.shape and rel_err(a, b) < TOL[dtype]


@needs_gpu
@pytest.mark.parametrize(
    "d,widths,m,dtype,launched",
    [
        (2, [64, 64, 64, 64], 3, torch.float32, True),
        (3, [128, 128], 4, torch.float32, True),
        (2, [20, 20, 20], 3, torch.float64, True),
        (2, [129], 3, torch.float32, False),  # width > 128: GEMM path
        (2, [16], 33, torch.float32, False),  # m > 32
        (8, [128, 128], 3, torch.float64, False),  # too little shared memory for 8 points
    ],
)
def test_tile_kernel_launches_only_where_it_serves(d, widths, m, dtype, launched):
    net = _tile_net(d, widths, m, "tanh", dtype)
    x = torch.rand(257, d, dtype=dtype, device="cuda")
    with fluxkern.cuda_kernel("tile"):
        assert _tile_kernel_launched(lambda: fluxkern.jet(net, x, backend="cuda")) == launched
        y, jac = fluxkern.jet(net, x, backend="cuda")
    assert not _tile_kernel_launched(lambda: fluxkern.jet(net, x, backend="cuda"))  # default
    y_ref, jac_ref = fluxkern.jet(net, x, backend="cuda")
    tol = TOL[dtype] if dtype == torch.float64 else 1e-5  # float32: two roundings, same formula
    assert rel_err(y, y_ref) < tol and rel_err(jac, jac_ref) < tol


@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tile_forward_is_bitwise_deterministic(dtype):
    net = _tile_net(3, [40, 64, 40], 4, "silu", dtype)
    x = torch.rand(4097, 3, dtype=dtype, device="cuda") * 2 - 1
    first, second = _op_outputs(net, x, "tile"), _op_outputs(net, x, "tile")
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


@needs_gpu
@pytest.mark.parametrize("act", ACTS)
def test_tile_forward_large_n_matches_cpu(act):
    # 150000 points: thousands of tiles, the last one partial.
    net = make_net(2, 3, 64, 3, act)
    x = torch.rand(150001, 2, dtype=torch.float64, device="cuda") * 4 - 2
    with fluxkern.cuda_kernel("tile"):
        y, jac, g = loss_and_grads(net, x, "cuda")
    net_cpu = copy.deepcopy(net).cpu()  # the same weights (the CUDA generator draws others)
    y_c, jac_c, g_c = loss_and_grads(net_cpu, x.cpu(), "cpu")
    assert rel_err(y, y_c) < TOL[torch.float64] and rel_err(jac, jac_c) < TOL[torch.float64]
    for a, b in zip(g, g_c, strict=True):
        assert rel_err(a, b) < TOL[torch.float64]


@needs_gpu
@pytest.mark.parametrize("act", ACTS)
def test_tile_forward_opcheck(act):
    with fluxkern.cuda_kernel("tile"):
        torch.library.opcheck(torch.ops.fluxkern.mlp_jet.default, _cuda_op_args(act))


@needs_gpu
@pytest.mark.parametrize("paired", [False, True], ids=["unpaired", "paired"])
def test_block_loss_with_tile_forward_matches_gemm_path(paired):
    args = block_args(4097, paired=paired, seed=31)
    want = block_run(args, LOSS_DEVICE)
    with fluxkern.cuda_kernel("tile"):
        got = block_run(args, LOSS_DEVICE)
    assert_block_close(got, want, TOL[F64])
