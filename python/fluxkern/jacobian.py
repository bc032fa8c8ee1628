"""The residual Jacobian: r [N, R] and dr/dtheta [N, R, n_params] of a fused group.

For curvature optimizers (Gauss-Newton, Levenberg-Marquardt). The compiled op
``torch.ops.fluxkern.residual_jacobian`` (CPU) computes, per point, the jet and then one reverse
pass per residual written straight into the point's rows; its pure-torch twin is
:func:`fluxkern.reference.residual_jacobian`. theta, the columns of the Jacobian, is the
network's parameters flattened as :func:`parameter_layout` says. The public names are re-exported
by :mod:`fluxkern.ops` (``fluxkern.ops.residual_jacobian`` etc.). See docs/residual_jacobian.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from fluxkern import _ext, reference
from fluxkern._backends import backends, resolve_backend
from fluxkern.program import ResidualProgram
from fluxkern.specs import MlpSpec

__all__ = [
    "JACOBIAN_CHUNK_BYTES",
    "ParameterSlice",
    "parameter_layout",
    "residual_jacobian",
    "residual_jacobian_chunks",
]

# Default cap on the Jacobian rows computed in one chunk of residual_jacobian (bytes of the
# chunk's [n, R, n_params] block). The torch twin needs about three times this in temporaries.
JACOBIAN_CHUNK_BYTES = 64 * 2**20


class ParameterSlice(NamedTuple):
    """Where one parameter tensor sits in the flat parameter vector theta."""

    name: str  # "weights[l]" or "biases[l]" (fluxkern.MLP: layers.l.weight, layers.l.bias)
    offset: int  # first element in theta
    shape: tuple[int, ...]  # the tensor's shape; its elements follow row-major


def parameter_layout(net: MlpSpec) -> list[ParameterSlice]:
    """The order of the flat parameter vector theta that residual_jacobian's columns follow.

    theta = cat(weights[0].flatten(), biases[0], weights[1].flatten(), biases[1], ...), each
    weight row-major [out, in]. For a fluxkern.MLP this is exactly
    ``torch.nn.utils.parameters_to_vector(model.parameters())`` (its parameters are
    layers.0.weight, layers.0.bias, layers.1.weight, ...; shift and scale are buffers). For an
    nn.Sequential read by fluxkern.nn.mlp_spec it is the same order, provided every Linear has a
    bias (a missing bias still takes its slot here, as zeros, but is not among the parameters).

    Args:
        net: The MLP.

    Returns:
        One ParameterSlice per tensor, in order; the last one ends at the parameter count.
    """
    out: list[ParameterSlice] = []
    offset = 0
    for layer, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        for name, t in ((f"weights[{layer}]", w), (f"biases[{layer}]", b)):
            out.append(ParameterSlice(name, offset, tuple(t.shape)))
            offset += t.numel()
    return out


def _jacobian_kernel(backend: str) -> bool:
    """Whether the compiled residual_jacobian op has a kernel for this backend's device."""
    if backend not in backends() or not hasattr(torch.ops.fluxkern, "residual_jacobian"):
        return False
    key = "CUDA" if backend == "cuda" else "CPU"
    return torch._C._dispatch_has_kernel_for_dispatch_key("fluxkern::residual_jacobian", key)


def _chunk_program(program: ResidualProgram, n: int, n0: int, n1: int) -> ResidualProgram:
    """The program restricted to points (pairs) n0..n1 of n (its cols rows)."""
    if program.paired:
        cols = torch.cat([program.cols[n0:n1], program.cols[n + n0 : n + n1]])
    else:
        cols = program.cols[n0:n1]
    return dataclasses.replace(program, cols=cols)


def residual_jacobian(
    program: ResidualProgram,
    x: Tensor,
    net: MlpSpec,
    backend: str | None = None,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Residuals of a fused group and their Jacobian with respect to all network parameters.

    For curvature optimizers (Gauss-Newton, Levenberg-Marquardt): r are the raw residuals (not
    squared, weighted or reduced) and jac = dr/dtheta, computed in one pass per chunk of points
    (the fused op: the jet, then per point and residual the adjoint pass written straight into
    the point's rows; or its torch twin :func:`fluxkern.reference.residual_jacobian`). Not
    differentiable: the results carry no autograd graph. Residuals vanish off each block's rows
    in a segmented group, and so do their rows of jac.

    Memory: jac holds N R n_params elements (8 bytes each in float64), all returned at once;
    chunking only bounds the working memory of each pass. To never hold all of jac, use
    :func:`residual_jacobian_chunks` (docs/residual_jacobian.md).

    Args:
        program: The group's residual program.
        x: Points [P, d]; for a paired program P = 2N and x = cat(a, b).
        net: The MLP.
        backend: None (the fused op on the CPU, the twin elsewhere), "torch", "cpu" or "cuda"
            (the CUDA kernel: one thread per point; matched the twin on an H200, not timed).
        chunk: Points (pairs) per pass; None picks the most whose jac block stays under
            JACOBIAN_CHUNK_BYTES.

    Returns:
        r [N, R] and jac [N, R, n_params], columns in the order of :func:`parameter_layout`.

    Raises:
        ValueError: chunk is not a positive integer, or a bad backend (see resolve_backend).
        RuntimeError: The backend has no compiled residual-Jacobian kernel in this build.
    """
    rows = x.shape[0]
    n = rows // 2 if program.paired else rows
    parts = residual_jacobian_chunks(program, x, net, backend, chunk)
    first = next(parts)
    if first[1] == n:  # one pass
        return first[2], first[3]
    r = x.new_empty(n, program.n_res)  # [N, R]
    jac = x.new_empty(n, program.n_res, first[3].shape[2])  # [N, R, n_params]
    for n0, n1, r_c, jac_c in (first, *parts):
        r[n0:n1], jac[n0:n1] = r_c, jac_c
    return r, jac


def residual_jacobian_chunks(
    program: ResidualProgram,
    x: Tensor,
    net: MlpSpec,
    backend: str | None = None,
    chunk: int | None = None,
) -> Iterator[tuple[int, int, Tensor, Tensor]]:
    """:func:`residual_jacobian` one chunk of points (pairs) at a time, for callers that reduce
    each chunk (e.g. accumulate J^T J and J^T r) and so never hold the whole Jacobian.

    Arguments as for :func:`residual_jacobian` (checked before the first chunk is computed).

    Yields:
        (n0, n1, r [n1 - n0, R], jac [n1 - n0, R, n_params]): points (pairs) n0..n1 of N, in
        order; at least one chunk (an empty one when N = 0).
    """
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
        raise ValueError(f"residual_jacobian: chunk must be a positive integer, got {chunk!r}")
    name = resolve_backend(backend, x.device)
    if backend is None and name == "cuda":
        # The CUDA kernel is straightforward (one thread per point, uncoalesced) and has never run
        # on a GPU; the twin's batched einsums are the default there. backend="cuda" asks for it.
        name = "torch"
    if name != "torch" and not _jacobian_kernel(name):
        if backend is not None:
            raise RuntimeError(
                f"residual_jacobian: backend {name!r} has no compiled kernel in this build"
            )
        name = "torch"
    rows = x.shape[0]
    n = rows // 2 if program.paired else rows
    if chunk is None:
        n_params = sum(w.numel() + b.numel() for w, b in zip(net.weights, net.biases, strict=True))
        chunk = max(1, JACOBIAN_CHUNK_BYTES // max(1, program.n_res * n_params * x.element_size()))
    return _chunks(name, program, x, net, n, chunk)


def _chunks(
    backend: str, program: ResidualProgram, x: Tensor, net: MlpSpec, n: int, chunk: int
) -> Iterator[tuple[int, int, Tensor, Tensor]]:
    for n0 in range(0, max(n, 1), chunk):
        n1 = min(n, n0 + chunk)
        if n0 == 0 and n1 == n:
            part, xc = program, x
        else:
            part = _chunk_program(program, n, n0, n1)
            xc = torch.cat([x[n0:n1], x[n + n0 : n + n1]]) if program.paired else x[n0:n1]
        with torch.no_grad():
            r, jac = _jacobian_pass(backend, part, xc, net)
        yield n0, n1, r, jac


def _jacobian_pass(
    backend: str, program: ResidualProgram, x: Tensor, net: MlpSpec
) -> tuple[Tensor, Tensor]:
    if backend == "torch":
        return reference.residual_jacobian(program, x, net)
    return torch.ops.fluxkern.residual_jacobian(
        x,
        net.shift,
        net.scale,
        list(net.weights),
        list(net.biases),
        net.activation,
        program.cols,
        program.table,
        program.coef,
        program.n_res,
        program.paired,
    )


def _register() -> None:
    """residual_jacobian: fake kernel (no autograd formula: the op is not differentiable)."""

    @torch.library.register_fake("fluxkern::residual_jacobian")
    def _residual_jacobian_fake(
        x, shift, scale, weights, biases, activation, cols, table, coef, n_res, paired
    ):
        n = x.shape[0] // 2 if paired else x.shape[0]
        n_params = sum(w.numel() + b.numel() for w, b in zip(weights, biases, strict=True))
        return x.new_empty(n, n_res), x.new_empty(n, n_res, n_params)

    # Not differentiable: its outputs never require grad (also when an input does), and a
    # backward through it (which cannot happen through the outputs) would say so.
    def _setup(ctx, inputs, output):
        ctx.mark_non_differentiable(*output)

    def _backward(ctx, *grads):
        raise RuntimeError("fluxkern.residual_jacobian is not differentiable")

    torch.library.register_autograd("fluxkern::residual_jacobian", _backward, setup_context=_setup)


if _ext.available() and hasattr(torch.ops.fluxkern, "residual_jacobian"):
    _register()
