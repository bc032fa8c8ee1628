"""Network modules: the fluxkern MLP and the Sin activation module."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fluxkern import ops, reference
from fluxkern.specs import MlpSpec

__all__ = ["MLP", "Sin", "MlpSpec", "gradient_targets", "mlp_spec"]

_MAX_INPUTS, _MAX_WIDTH, _MAX_HIDDEN, _MAX_OUTPUTS = 8, 512, 16, 32


def _exact(values: Sequence[float] | Tensor) -> Tensor:
    """A tensor as given, numbers as float64 (not rounded through the float32 default)."""
    return values if isinstance(values, Tensor) else torch.as_tensor(values, dtype=torch.float64)


class Sin(nn.Module):
    """Elementwise sine, for use between nn.Linear layers in an nn.Sequential."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(x)


def _check_range(name: str, value: int, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"MLP: {name} must be an integer in {lo}..{hi}, got {value!r}")


class MLP(nn.Module):
    """A tanh / sin / SiLU MLP with a linear output layer and built-in input standardisation.

    The network computes y = c * (A_o s(... s(A_1 (x - shift) / scale + b_1) ...) + b_o) with
    Xavier-normal weights, zero biases and c = 1 by default. The output scale c [m] lets every
    raw output be O(1) where the fields differ by orders of magnitude (a flux 1e-4 times the
    solution: c = [1, 1e-4]); :meth:`spec` folds it into the last layer, so every path (the
    fused ops, their twin, forward) sees the same network and gradients reach A_o and b_o
    through autograd.

    Args:
        in_features: Input dimension d (1..8).
        out_features: Output dimension m (1..32).
        width: Hidden width (1..512).
        depth: Number of hidden layers (1..16).
        activation: "tanh", "sin" or "silu".
        input_shift: Shift [d] subtracted from the inputs (default zeros).
        input_scale: Scale [d] dividing the shifted inputs (default ones).
        output_scale: Scale [m] multiplying the outputs (default ones), each finite and
            non-zero.
        dtype: Parameter dtype (default torch.get_default_dtype()).
        device: Parameter device.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        width: int,
        depth: int,
        activation: str = "tanh",
        input_shift: Sequence[float] | Tensor | None = None,
        input_scale: Sequence[float] | Tensor | None = None,
        output_scale: Sequence[float] | Tensor | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        _check_range("in_features", in_features, 1, _MAX_INPUTS)
        _check_range("out_features", out_features, 1, _MAX_OUTPUTS)
        _check_range("width", width, 1, _MAX_WIDTH)
        _check_range("depth", depth, 1, _MAX_HIDDEN)
        reference.activation_and_derivative(activation)  # validates the name
        self.activation = activation
        sizes = [in_features] + [width] * depth + [out_features]
        factory = {"dtype": dtype, "device": device}
        self.layers = nn.ModuleList(
            nn.Linear(a, b, **factory) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
        shift = torch.zeros(in_features) if input_shift is None else _exact(input_shift)
        scale = torch.ones(in_features) if input_scale is None else _exact(input_scale)
        for name, t in (("input_shift", shift), ("input_scale", scale)):
            if t.shape != (in_features,):
                raise ValueError(
                    f"MLP: {name} must have shape [{in_features}], got {list(t.shape)}"
                )
        if bool((scale == 0).any()):
            raise ValueError("MLP: input_scale must be non-zero in every coordinate")
        out = torch.ones(out_features) if output_scale is None else _exact(output_scale)
        if out.shape != (out_features,):
            raise ValueError(
                f"MLP: output_scale must have shape [{out_features}], got {list(out.shape)}"
            )
        if not bool(torch.isfinite(out).all()) or bool((out == 0).any()):
            raise ValueError(f"MLP: output_scale must be finite and non-zero, got {out.tolist()}")
        param = self.layers[0].weight
        self.register_buffer("input_shift", shift.to(dtype=param.dtype, device=param.device))
        self.register_buffer("input_scale", scale.to(dtype=param.dtype, device=param.device))
        self.register_buffer("output_scale", out.to(dtype=param.dtype, device=param.device))
        self._output_scaled = bool((out != 1).any())  # read on the host once, not per call

    @property
    def output_scaled(self) -> bool:
        """Whether some output scale differs from 1."""
        return self._output_scaled

    def _load_from_state_dict(  # type: ignore[no-untyped-def]
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
    ):
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
        )
        # a state saved before output_scale existed holds none: the scale of such a network is 1
        # (the caller's dict is left as it is)
        key = prefix + "output_scale"
        if key in missing_keys:
            missing_keys.remove(key)
            with torch.no_grad():
                self.output_scale.fill_(1.0)
        self._output_scaled = bool((self.output_scale != 1).any())

    def _last_layer(self) -> tuple[Tensor, Tensor]:
        """The output layer's weight [m, width] and bias [m] with the output scale folded in."""
        last = self.layers[-1]
        if not self._output_scaled:
            return last.weight, last.bias
        c = self.output_scale
        return last.weight * c[:, None], last.bias * c

    @property
    def in_features(self) -> int:
        return self.layers[0].in_features

    @property
    def out_features(self) -> int:
        return self.layers[-1].out_features

    def spec(self) -> MlpSpec:
        """Returns the tensors of this network in the layout the jet op takes."""
        w_last, b_last = self._last_layer()
        return MlpSpec(
            self.input_shift,
            self.input_scale,
            [layer.weight for layer in self.layers[:-1]] + [w_last],
            [layer.bias for layer in self.layers[:-1]] + [b_last],
            self.activation,
        )

    def forward(self, x: Tensor) -> Tensor:
        """Network values y [N, m] for points x [N, d] (plain torch, any derivative order)."""
        act = reference.activation_and_derivative(self.activation)
        h = (x - self.input_shift) / self.input_scale
        for layer in self.layers[:-1]:
            h = act(layer(h))[0]
        y = self.layers[-1](h)
        return y * self.output_scale if self._output_scaled else y

    def jet(self, x: Tensor, backend: str | None = None) -> tuple[Tensor, Tensor]:
        """Values y [N, m] and input Jacobian J = dy/dx [N, m, d] in one pass.

        Args:
            x: Points [N, d].
            backend: None (fastest for x's device), "torch", "cpu" or "cuda".

        Returns:
            (y, J).
        """
        return ops.mlp_jet(x, self.spec(), backend)

    def to_sequential(self) -> nn.Sequential:
        """An equivalent nn.Sequential with the input standardisation folded into layer 1."""
        act_module = {"tanh": nn.Tanh, "sin": Sin, "silu": nn.SiLU}[self.activation]
        mods: list[nn.Module] = []
        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                lin = nn.Linear(
                    layer.in_features,
                    layer.out_features,
                    dtype=layer.weight.dtype,
                    device=layer.weight.device,
                )
                w, b = layer.weight, layer.bias
                if i == 0:
                    w = w / self.input_scale
                    b = b - w @ self.input_shift
                if i == len(self.layers) - 1:
                    w, b = w * self.output_scale[:, None], b * self.output_scale
                lin.weight.copy_(w)
                lin.bias.copy_(b)
                mods.append(lin)
                if i < len(self.layers) - 1:
                    mods.append(act_module())
        return nn.Sequential(*mods)

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"


_SEQ_ACTIVATIONS: dict[type, str] = {nn.Tanh: "tanh", nn.SiLU: "silu", Sin: "sin"}


def mlp_spec(model: nn.Module) -> MlpSpec:
    """Extracts the jet op's tensors from a fluxkern.MLP or a plain nn.Sequential.

    The Sequential must alternate nn.Linear and one activation type (nn.Tanh, nn.SiLU or
    fluxkern.Sin), starting and ending with nn.Linear.

    Args:
        model: The network.

    Returns:
        Its MlpSpec.

    Raises:
        TypeError: The model or one of its layers is not supported; the message names it.
    """
    if isinstance(model, MLP):
        return model.spec()
    if not isinstance(model, nn.Sequential):
        raise TypeError(
            f"fluxkern.jet: unsupported model type {type(model).__name__}; pass a fluxkern.MLP "
            "or an nn.Sequential of nn.Linear layers with nn.Tanh / nn.SiLU / fluxkern.Sin between"
        )
    layers = list(model)
    linears, acts = layers[0::2], layers[1::2]
    for i, mod in enumerate(layers):
        want_linear = i % 2 == 0
        if want_linear and not isinstance(mod, nn.Linear):
            raise TypeError(
                f"fluxkern.jet: layer {i} of the Sequential is {type(mod).__name__}; expected "
                "nn.Linear at even positions (Linear, activation, Linear, ..., Linear)"
            )
        if not want_linear and type(mod) not in _SEQ_ACTIVATIONS:
            raise TypeError(
                f"fluxkern.jet: layer {i} of the Sequential is {type(mod).__name__}, an "
                "unsupported activation; supported: nn.Tanh, nn.SiLU, fluxkern.Sin"
            )
    if len(layers) < 3 or len(layers) % 2 == 0:
        raise TypeError(
            f"fluxkern.jet: the Sequential has {len(layers)} layers; it must be Linear, "
            "activation, ..., Linear with at least one hidden layer"
        )
    names = {_SEQ_ACTIVATIONS[type(a)] for a in acts}
    if len(names) != 1:
        raise TypeError(
            f"fluxkern.jet: the Sequential mixes activations {sorted(names)}; the fused jet needs "
            "one activation for all hidden layers"
        )
    first = linears[0].weight
    d = first.shape[1]
    biases = [
        lin.bias if lin.bias is not None else first.new_zeros(lin.out_features) for lin in linears
    ]
    return MlpSpec(
        first.new_zeros(d),
        first.new_ones(d),
        [lin.weight for lin in linears],
        biases,
        names.pop(),
    )


def gradient_targets(model: nn.Module, spec: MlpSpec) -> list[tuple[Tensor, Tensor | None]]:
    """The tensors that receive the gradients of `spec`'s weights and biases (in the order
    [*weights, *biases]), each with the factor its gradient takes (None: 1).

    A spec tensor that is itself a parameter receives its own gradient; the last layer of an
    output-scaled :class:`MLP` (W c and b c, :meth:`MLP.spec`) passes c times its gradient to
    the raw weight and bias, as autograd would through the product (bitwise the same).

    Args:
        model: The network `spec` was read from (:func:`mlp_spec`).
        spec: Its spec.

    Returns:
        (tensor, factor) pairs, one per weight, then one per bias.
    """
    tensors = [*spec.weights, *spec.biases]
    targets: list[tuple[Tensor, Tensor | None]] = [(t, None) for t in tensors]
    if isinstance(model, MLP) and model.output_scaled:
        last, c = model.layers[-1], model.output_scale
        n = len(spec.weights)
        targets[n - 1] = (last.weight, c[:, None])
        targets[2 * n - 1] = (last.bias, c)
    return targets
