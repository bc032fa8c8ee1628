"""The smooth-plus-rough output perturbation p(x) of the gradient-sensitivity measurement."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["ROUGH_FREQUENCY", "ROUGH_TERMS", "SMOOTH_FREQUENCY", "OutputPerturbation"]

ROUGH_TERMS = 4
SMOOTH_FREQUENCY = (0.5, 1.5)  # |a| of the smooth term, in standardised inputs
ROUGH_FREQUENCY = (10.0, 30.0)  # |w| of the rough terms, in standardised inputs


class OutputPerturbation:
    """A smooth-plus-rough function p(x) [N, m] added to a network's outputs.

    In the network's standardised inputs z = (x - shift) / scale, output column c gets

        p_c(z) = sin(a_c . z + phi_c) + R^(-1/2) sum_{r=1..R} sin(w_cr . z + psi_cr),

    with random directions, |a_c| uniform in SMOOTH_FREQUENCY, |w_cr| uniform in ROUGH_FREQUENCY
    and uniform phases. A k-th derivative of the rough part is about |w|^k times larger than the
    part itself, which is what a differential operator in the loss amplifies.

    Args:
        m: Number of outputs.
        shift: Input shift [d] of the network.
        scale: Input scale [d] of the network.
        generator: The random source.
        rough_terms: R.
    """

    def __init__(
        self,
        m: int,
        shift: Tensor,
        scale: Tensor,
        generator: torch.Generator,
        rough_terms: int = ROUGH_TERMS,
    ) -> None:
        d = shift.shape[0]
        kw = {"dtype": torch.float64}
        k = 1 + rough_terms
        dirs = torch.randn(m, k, d, generator=generator, **kw)  # [m, K, d]
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)
        u = torch.rand(m, k, generator=generator, **kw)  # [m, K]
        lo = torch.tensor([SMOOTH_FREQUENCY[0]] + [ROUGH_FREQUENCY[0]] * rough_terms, **kw)
        hi = torch.tensor([SMOOTH_FREQUENCY[1]] + [ROUGH_FREQUENCY[1]] * rough_terms, **kw)
        freq = lo + (hi - lo) * u  # [m, K]
        phase = 2 * math.pi * torch.rand(m, k, generator=generator, **kw)  # [m, K]
        amp = torch.tensor([1.0] + [rough_terms**-0.5] * rough_terms, **kw)  # [K]
        dtype, device = shift.dtype, shift.device
        self.freq = (dirs * freq[..., None]).to(dtype=dtype, device=device)  # [m, K, d]
        self.phase = phase.to(dtype=dtype, device=device)  # [m, K]
        self.amp = amp.to(dtype=dtype, device=device)  # [K]
        self.shift, self.scale = shift, scale

    def _arg(self, x: Tensor) -> Tensor:
        z = (x - self.shift) / self.scale  # [N, d]
        return torch.einsum("nd,mkd->nmk", z, self.freq) + self.phase  # [N, m, K]

    def value(self, x: Tensor) -> Tensor:
        """p(x) [N, m] (differentiable in x to any order)."""
        return (self.amp * torch.sin(self._arg(x))).sum(-1)

    def jacobian(self, x: Tensor) -> Tensor:
        """dp/dx [N, m, d]."""
        c = self.amp * torch.cos(self._arg(x))  # [N, m, K]
        return torch.einsum("nmk,mkd->nmd", c, self.freq) / self.scale

    def spec(self) -> dict[str, Any]:
        return {
            "form": "sin(a.z + phi) + R^-1/2 sum_r sin(w_r.z + psi_r), z = standardised inputs",
            "rough_terms": int(self.amp.shape[0] - 1),
            "smooth_frequency": list(SMOOTH_FREQUENCY),
            "rough_frequency": list(ROUGH_FREQUENCY),
        }
