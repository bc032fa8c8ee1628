"""Drop-in entry points for existing PyTorch code."""

from __future__ import annotations

from torch import Tensor, nn

from fluxkern import ops
from fluxkern.nn import mlp_spec
from fluxkern.ops import backends

__all__ = ["backends", "jet"]


def jet(model: nn.Module, x: Tensor, backend: str | None = None) -> tuple[Tensor, Tensor]:
    """Values and input Jacobian of an MLP: the drop-in for hand-written autograd.grad code.

    Args:
        model: A fluxkern.MLP, or an nn.Sequential of nn.Linear layers with nn.Tanh, nn.SiLU or
            fluxkern.Sin between them.
        x: Points [N, d].
        backend: None for the fastest backend for x's device, or "torch", "cpu", "cuda"
            (see :func:`fluxkern.backends`).

    Returns:
        y [N, m] and J = dy/dx [N, m, d]; differentiable with respect to the model's parameters
        and x.

    Raises:
        TypeError: The model is not a supported MLP.
        ValueError: Bad shapes, dtypes or backend.
    """
    s = mlp_spec(model)
    if not isinstance(x, Tensor):
        raise TypeError(f"fluxkern.jet: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"fluxkern.jet: x must be 2-D [N, d], got shape {list(x.shape)}")
    return ops.mlp_jet(x, s, backend)
