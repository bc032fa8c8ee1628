"""The fluxkern torch ops: fake kernels, autograd registration and backend selection.

The compiled ops live in the ``torch.ops.fluxkern`` namespace (registered by the extension with
``TORCH_LIBRARY``). This module teaches autograd and torch.compile about them and offers Python
functions with the same signatures as their pure-torch twins in :mod:`fluxkern.reference`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from fluxkern import _ext, reference, settings
from fluxkern._backends import _BACKENDS, BACKENDS, backends, resolve_backend
from fluxkern.jacobian import (
    JACOBIAN_CHUNK_BYTES,
    ParameterSlice,
    parameter_layout,
    residual_jacobian,
    residual_jacobian_chunks,
)
from fluxkern.program import ResidualProgram, split_op_args
from fluxkern.specs import LbfgsHistory, MlpSpec

__all__ = [
    "BACKENDS",
    "JACOBIAN_CHUNK_BYTES",
    "ParameterSlice",
    "SECOND_DERIVATIVE_ERROR",
    "backends",
    "lbfgs_direction",
    "block_loss",
    "fused_loss_and_grads",
    "mlp_jet",
    "parameter_layout",
    "residual_jacobian",
    "residual_jacobian_chunks",
    "resolve_backend",
    "sym_matvec",
    "sym_rank2_update_",
    "sym_rank2_update_matvec_",
]

SECOND_DERIVATIVE_ERROR = (
    "fluxkern: second derivatives through the fused jet op are not supported (its backward is a "
    "fused kernel with no derivative of its own). Write the PDE as a first-order (flux) system so "
    "that only first derivatives are needed, or use backend='torch', which differentiates to any "
    "order."
)


def mlp_jet(x: Tensor, net: MlpSpec, backend: str | None = None) -> tuple[Tensor, Tensor]:
    """MLP values and input Jacobian in one forward-mode pass (fused op or torch twin).

    Args:
        x: Points [N, d].
        net: The MLP (:class:`fluxkern.nn.MlpSpec`: input shift and scale, weights in
            nn.Linear layout, biases, activation), as for :func:`fluxkern.reference.mlp_jet`.
        backend: None (fastest for x's device), "torch", "cpu" or "cuda".

    Returns:
        y [N, m] and J = dy/dx [N, m, d]. Differentiable with respect to x and every tensor
        of net (first order only on the fused backends).
    """
    if resolve_backend(backend, x.device) == "torch":
        return reference.mlp_jet(x, net)
    weights, biases = list(net.weights), list(net.biases)
    args = (x, net.shift, net.scale, *weights, *biases)
    if (
        not torch.compiler.is_compiling()
        and torch.is_grad_enabled()
        and any(t.requires_grad for t in args)
    ):
        # Eager fast path: the same op and backward op through one small autograd.Function,
        # without the per-call flattening of torch.library's autograd wrapper (about 0.1 ms of a
        # 1-2 ms step at the users' sizes). Second derivatives still reach the backward op's
        # registered formula, which refuses them with SECOND_DERIVATIVE_ERROR.
        return _Jet.apply(net.activation, len(weights), *args)
    y, jac, _ = torch.ops.fluxkern.mlp_jet(x, net.shift, net.scale, weights, biases, net.activation)
    return y, jac


class _Jet(torch.autograd.Function):
    """(x, shift, scale, weights..., biases...) -> (y, J) through the jet op and its backward op."""

    @staticmethod
    def forward(ctx: Any, activation: str, n_layers: int, *args: Tensor) -> tuple[Tensor, Tensor]:
        x, shift, scale = args[:3]
        weights, biases = list(args[3 : 3 + n_layers]), list(args[3 + n_layers :])
        y, jac, saved = torch.ops.fluxkern.mlp_jet(x, shift, scale, weights, biases, activation)
        ctx.activation, ctx.n_layers = activation, n_layers
        ctx.save_for_backward(saved, *args)
        return y, jac

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor, grad_J: Tensor) -> tuple[Tensor | None, ...]:
        saved, x, shift, scale, *params = ctx.saved_tensors
        k = ctx.n_layers
        gx, gshift, gscale, gw, gb = torch.ops.fluxkern.mlp_jet_backward(
            grad_y, grad_J, x, shift, scale, params[:k], params[k:], ctx.activation, saved
        )
        return None, None, gx, gshift, gscale, *gw, *gb


def block_loss(
    program: ResidualProgram,
    x: Tensor,
    net: MlpSpec,
    lam: Tensor,
    mu: Tensor,
    backend: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Augmented-Lagrangian loss of one fused group of point blocks (fused op or torch twin).

    Arguments as for :func:`fluxkern.reference.block_loss`, plus the backend.

    Returns:
        The group's loss (a scalar, differentiable with respect to weights and biases, and to
        program.coef where it requires grad: trainable unknowns in the coefficients, whose
        gradient the fused op returns from the same pass) and the constraint values C [N, R].
    """
    if resolve_backend(backend, x.device) == "torch":
        return reference.block_loss(program, x, net, lam, mu)
    if not torch.is_grad_enabled() and program.coef.requires_grad:
        program = replace(program, coef=program.coef.detach())
    args = program.op_args(x, net, lam, mu)
    if (
        torch.compiler.is_compiling()
        or not torch.is_grad_enabled()
        # not weights, biases, coef
        or any(isinstance(a, Tensor) and a.requires_grad for i, a in enumerate(args) if i != 8)
    ):
        # the op with its registered autograd formula (which refuses gradients for inputs
        # other than the parameters and the coefficients)
        loss, c = torch.ops.fluxkern.block_loss(*args)[:2]
        return loss, c
    # Eager fast path: the op without autograd, then its eager parameter (and coefficient)
    # gradients attached by one small autograd.Function. Same values and gradients as the
    # registered formula, without the per-call tensor-list flattening of torch.library's
    # autograd wrapper.
    params: tuple[Tensor, ...] = (*net.weights, *net.biases)
    with torch.no_grad():
        loss, c, grad_w, grad_b, grad_coef = torch.ops.fluxkern.block_loss(*args)
    grads = [*grad_w, *grad_b]
    if program.coef.requires_grad:
        params, grads = (*params, program.coef), [*grads, grad_coef]
    return _AttachGradients.apply(loss, len(params), *params, *grads), c


def fused_loss_and_grads(
    program: ResidualProgram, x: Tensor, net: MlpSpec, lam: Tensor, mu: Tensor
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """The loss of one fused group with its parameter gradient, from one call of the fused op
    outside autograd (for x's device; needs the fused backend there).

    Arguments as for :func:`block_loss`; nothing of them may require grad but the weights and
    biases, which receive none here.

    Returns:
        The loss (a scalar), C [N, R], and d loss / d parameter for the weights, then the
        biases, in net's order (none of them differentiable).
    """
    return _op_outside_autograd(program.op_args(x, net, lam, mu))


def _op_outside_autograd(args: list[Any]) -> tuple[Tensor, Tensor, list[Tensor]]:
    # Straight to the device kernel below the autograd keys, as torch.library's autograd
    # wrapper does for a call without grad, minus that wrapper's Python hop (~60 us a call:
    # about 3 ms of a convection L-BFGS epoch's 46 calls). Dispatch modes still see the call.
    with torch._C._AutoDispatchBelowAutograd():
        loss, c, grad_w, grad_b, _ = torch.ops.fluxkern.block_loss.default(*args)
    return loss, c, [*grad_w, *grad_b]


class _AttachGradients(torch.autograd.Function):
    """loss -> loss, with d loss / d param_i = grads_i (computed eagerly by the fused op)."""

    @staticmethod
    def forward(ctx: Any, loss: Tensor, n: int, *params_and_grads: Tensor) -> Tensor:
        ctx.n = n
        ctx.save_for_backward(*params_and_grads[n:])
        return loss.clone()

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
        grads = ctx.saved_tensors
        return (None, None, *[grad_loss * g for g in grads], *([None] * ctx.n))


def lbfgs_direction(grad: Tensor, history: LbfgsHistory, new_row: int, h_diag: float) -> Tensor:
    """The L-BFGS search direction -H grad (fused CPU op for CPU tensors, torch twin elsewhere).

    Arguments as for :func:`fluxkern.reference.lbfgs_direction` (sy and yy are updated in place).

    Returns:
        The direction [P].
    """
    if grad.device.type == "cpu" and "cpu" in _BACKENDS:
        return torch.ops.fluxkern.lbfgs_direction(grad, *history, new_row, float(h_diag))
    return reference.lbfgs_direction(grad, history, new_row, h_diag)


def _fused_cpu(t: Tensor) -> bool:
    """Whether t is a CPU tensor and the compiled CPU ops are available."""
    return t.device.type == "cpu" and "cpu" in _BACKENDS


def sym_matvec(h: Tensor, x: Tensor) -> Tensor:
    """H x for the symmetric H [P, P] whose upper triangle h holds (the strictly lower triangle
    is not read): the compiled op for CPU tensors (half the matrix's bytes of a full product),
    the torch twin :func:`fluxkern.reference.sym_matvec` elsewhere.

    Args:
        h: [P, P] float32 or float64, contiguous.
        x: [P], same dtype and device.

    Returns:
        H x [P].
    """
    if _fused_cpu(h):
        return torch.ops.fluxkern.sym_matvec(h, x)
    return reference.sym_matvec(h, x)


def sym_rank2_update_(h: Tensor, u: Tensor, w: Tensor) -> None:
    """h_ij += u_i0 w_0j + u_i1 w_1j on the upper triangle (j >= i) of h, in place (the
    compiled op for CPU tensors, the torch twin :func:`fluxkern.reference.sym_rank2_update_`
    elsewhere); the strictly lower triangle is not written.

    Args:
        h: [P, P] float32 or float64, contiguous.
        u: [P, 2], same dtype and device.
        w: [2, P], same dtype and device.
    """
    if _fused_cpu(h):
        torch.ops.fluxkern.sym_rank2_update_(h, u, w)
    else:
        reference.sym_rank2_update_(h, u, w)


def sym_rank2_update_matvec_(h: Tensor, u: Tensor, w: Tensor, x: Tensor) -> Tensor:
    """:func:`sym_rank2_update_` and then :func:`sym_matvec` with the updated triangle, in one
    pass over it for CPU tensors (the torch twin
    :func:`fluxkern.reference.sym_rank2_update_matvec_` elsewhere).

    Args:
        h: [P, P] float32 or float64, contiguous (updated in place).
        u: [P, 2], same dtype and device.
        w: [2, P], same dtype and device.
        x: [P], same dtype and device.

    Returns:
        (the updated H) x [P].
    """
    if _fused_cpu(h):
        return torch.ops.fluxkern.sym_rank2_update_matvec_(h, u, w, x)
    return reference.sym_rank2_update_matvec_(h, u, w, x)


def _register() -> None:
    """Registers fake kernels and autograd formulas for the compiled ops."""
    _register_jet()
    _register_lbfgs()
    _register_block_loss()


def _register_jet() -> None:
    """mlp_jet and mlp_jet_backward: fake kernels; the jet's first-order autograd formula."""

    @torch.library.register_fake("fluxkern::mlp_jet")
    def _mlp_jet_fake(x, shift, scale, weights, biases, activation):
        n, d = x.shape
        if _jet_saves_nothing(x, weights):
            saved = 1  # a marker: the backward recomputes the forward per tile
        else:
            saved = sum((2 * d + 3) * n * w.shape[0] for w in weights[:-1])
        m = weights[-1].shape[0]
        return x.new_empty(n, m), x.new_empty(n, m, d), x.new_empty(saved)

    @torch.library.register_fake("fluxkern::mlp_jet_backward")
    def _mlp_jet_backward_fake(grad_y, grad_J, x, shift, scale, weights, biases, activation, saved):
        return (
            torch.empty_like(x, memory_format=torch.contiguous_format),
            torch.empty_like(shift),
            torch.empty_like(scale),
            [torch.empty_like(w, memory_format=torch.contiguous_format) for w in weights],
            [torch.empty_like(b) for b in biases],
        )

    def _setup(ctx, inputs, output):
        x, shift, scale, weights, biases, activation = inputs
        ctx.activation = activation
        ctx.n_layers = len(weights)
        ctx.save_for_backward(x, shift, scale, output[2], *weights, *biases)
        ctx.mark_non_differentiable(output[2])
        # The saved buffer never receives a gradient; do not materialise zeros of its size.
        ctx.set_materialize_grads(False)

    def _backward(ctx, grad_y, grad_J, _grad_saved):
        x, shift, scale, saved, *params = ctx.saved_tensors
        weights, biases = params[: ctx.n_layers], params[ctx.n_layers :]
        m = weights[-1].shape[0]
        if grad_y is None:
            grad_y = x.new_zeros(x.shape[0], m)
        if grad_J is None:
            grad_J = x.new_zeros(x.shape[0], m, x.shape[1])
        gx, gshift, gscale, gw, gb = torch.ops.fluxkern.mlp_jet_backward(
            grad_y, grad_J, x, shift, scale, weights, biases, ctx.activation, saved
        )
        return gx, gshift, gscale, list(gw), list(gb), None

    torch.library.register_autograd("fluxkern::mlp_jet", _backward, setup_context=_setup)

    def _no_second_derivative(ctx, *grads):
        raise RuntimeError(SECOND_DERIVATIVE_ERROR)

    def _setup_nothing(ctx, inputs, output):
        pass

    torch.library.register_autograd(
        "fluxkern::mlp_jet_backward", _no_second_derivative, setup_context=_setup_nothing
    )


# Limits of the per-tile CPU jet (csrc/kernels/loss_tile_cpu.h: kTileMaxWidth, kTileMaxHidden).
_TILE_MAX_WIDTH, _TILE_MAX_HIDDEN = 128, 16


def _jet_saves_nothing(x: Tensor, weights: list[Tensor]) -> bool:
    """True where the CPU jet op takes its per-tile path (csrc/ops/jet_tile_cpu.cpp): it then
    returns a [1] marker instead of the layer buffers, and its backward recomputes the forward."""
    hidden = weights[:-1]
    return (
        x.device.type == "cpu"
        and settings.get_cpu_kernel() == "tile"
        and len(hidden) <= _TILE_MAX_HIDDEN
        and all(w.shape[0] <= _TILE_MAX_WIDTH for w in hidden)
    )


def _register_lbfgs() -> None:
    """lbfgs_direction and the dense quasi-Newton ops (sym_*): fake kernels (no autograd: they
    run under no_grad)."""

    @torch.library.register_fake("fluxkern::lbfgs_direction")
    def _lbfgs_direction_fake(grad, s, y, rho, sy, yy, start, count, new_row, h_diag):
        return torch.empty_like(grad, memory_format=torch.contiguous_format)

    @torch.library.register_fake("fluxkern::sym_matvec")
    def _sym_matvec_fake(h, x):
        return x.new_empty(h.shape[0])

    @torch.library.register_fake("fluxkern::sym_rank2_update_")
    def _sym_rank2_update_fake(h, u, w):
        return None

    @torch.library.register_fake("fluxkern::sym_rank2_update_matvec_")
    def _sym_rank2_update_matvec_fake(h, u, w, x):
        return x.new_empty(h.shape[0])


def _register_block_loss() -> None:
    """block_loss: fake kernel and autograd formula (gradients for weights and biases only)."""
    # The op's argument names, from its registered schema (for error messages and to place the
    # gradients of weights and biases among its positional arguments).
    arg_names = [a.name for a in torch.ops.fluxkern.block_loss.default._schema.arguments]
    params_at = (arg_names.index("weights"), arg_names.index("biases"))

    coef_at, flag_at = arg_names.index("coef"), arg_names.index("coef_grad")

    @torch.library.register_fake("fluxkern::block_loss")
    def _block_loss_fake(*args):
        program, x, net, _, _ = split_op_args(args)
        n = x.shape[0] // 2 if program.paired else x.shape[0]
        coef_grad = len(args) > flag_at and bool(args[flag_at])
        return (
            x.new_empty(()),
            x.new_empty(n, program.n_res),
            [torch.empty_like(w, memory_format=torch.contiguous_format) for w in net.weights],
            [torch.empty_like(b) for b in net.biases],
            x.new_empty(program.coef.shape[0] if coef_grad else 0),
        )

    def _setup_block(ctx, inputs, output):
        ctx.n_layers = len(output[2])
        ctx.save_for_backward(*output[2], *output[3], output[4])
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)
        coef_grad = len(inputs) > flag_at and bool(inputs[flag_at])
        # the dispatcher leaves out coef_grad where it has its default (False): backward then
        # returns one gradient fewer
        ctx.n_inputs = flag_at + 1 if coef_grad else flag_at
        # inputs other than weights and biases (and coef with coef_grad) get no gradient: say
        # so instead of returning 0
        ctx.no_grad_for = [
            n
            for i, (n, t) in enumerate(zip(arg_names, inputs, strict=False))
            if isinstance(t, Tensor) and t.requires_grad and not (i == coef_at and coef_grad)
        ]

    def _block_backward(ctx, grad_loss, _grad_c, _gw, _gb, _gcoef):
        if ctx.no_grad_for:
            raise RuntimeError(
                "fluxkern.block_loss is differentiable with respect to the weights and biases "
                f"only; got inputs that require grad: {', '.join(ctx.no_grad_for)} (coef is "
                "differentiable with coef_grad=True). Use backend='torch' for other gradients."
            )
        grads: list[Any] = [None] * ctx.n_inputs
        if grad_loss is None:
            return tuple(grads)
        saved = ctx.saved_tensors
        grads[params_at[0]] = [grad_loss * g for g in saved[: ctx.n_layers]]
        grads[params_at[1]] = [grad_loss * g for g in saved[ctx.n_layers : 2 * ctx.n_layers]]
        if saved[-1].numel():
            grads[coef_at] = grad_loss * saved[-1]
        return tuple(grads)

    torch.library.register_autograd(
        "fluxkern::block_loss", _block_backward, setup_context=_setup_block
    )


if _ext.available():
    _register()
