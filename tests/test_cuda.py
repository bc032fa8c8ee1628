"""CUDA-specific behaviour of the jet op: registration, clear errors, determinism, the current
stream, the device guard, opcheck / gradcheck / compile on cuda, large N and 64-bit indexing.

Values against the oracles on cuda (odd shapes, float32 and float64) are in test_jet.py, whose
device matrix (tests/matrix.py) includes "cuda" when the cuda backend is available. The tests
here that need a GPU are skipped without one; bench/gpu_check.sh runs them with
FLUXKERN_TEST_CUDA=1, which makes a missing cuda backend an error (see matrix.py).
"""

from __future__ import annotations

import pytest
import torch

import fluxkern
from fluxkern import _ext, ops, reference
from matrix import TOL, rel_err

HAVE_CUDA = "cuda" in fluxkern.backends()
needs_gpu = pytest.mark.skipif(
    not HAVE_CUDA, reason="needs the cuda backend (a CUDA build of fluxkern and a GPU)"
)
needs_ext = pytest.mark.skipif(not _ext.available(), reason="the extension is not built")
ACTS = ["tanh", "sin", "silu"]
JET_OPS = ("mlp_jet", "mlp_jet_backward")


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
    """A random linear functional of (y, J) and its gradient w.r.t. parameters and x."""
    x = x.detach().requires_grad_(True)
    y, jac = fluxkern.jet(net, x, backend=backend)
    g = torch.Generator(device=x.device).manual_seed(seed)
    gy = torch.randn(y.shape, generator=g, dtype=y.dtype, device=y.device)  # [N, m]
    gj = torch.randn(jac.shape, generator=g, dtype=y.dtype, device=y.device)  # [N, m, d]
    loss = (y * gy).sum() + (jac * gj).sum()
    grads = torch.autograd.grad(loss, [*net.parameters(), x])
    return y, jac, grads


# --- any build with the extension -------------------------------------------------------------


@needs_ext
@pytest.mark.parametrize("op", JET_OPS)
def test_every_jet_op_has_a_cuda_kernel_registered(op):
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
@pytest.mark.parametrize("act", ACTS)
def test_runs_on_the_current_stream(act):
    """Work queued on a side stream behind a long sleep must be seen by the op on that stream.

    If any kernel of the op ran on another stream it would read the layer buffers (or x) before
    the side stream has written them, and the result would differ.
    """
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
    net_cpu = make_net(2, 3, 24, 2, act, device="cpu")
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
    # The same random functional restricted to the rows: regenerate it for the small run.
    gen = torch.Generator(device="cuda").manual_seed(1)
    gy = torch.randn((n, 2), generator=gen, device="cuda")[rows]
    gj = torch.randn((n, 2, d), generator=gen, device="cuda")[rows]
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
        return ops.mlp_jet(x, shift, scale, list(wb[:k]), list(wb[k:]), act, backend="cuda")

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
        s.shift.double(),
        s.scale.double(),
        [w.double() for w in s.weights],
        [b.double() for b in s.biases],
        act,
    )
    assert rel_err(y, y64) < TOL[torch.float32] and rel_err(jac, jac64) < TOL[torch.float32]
