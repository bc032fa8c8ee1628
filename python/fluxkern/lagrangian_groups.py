"""A fused group of the augmented-Lagrangian loss (:class:`_Group`): fused blocks evaluated by
one op call, with their points and their compiled residual program.
:class:`fluxkern.lagrangian.AugmentedLagrangian` plans the groups and makes the calls."""

from __future__ import annotations

import torch
from torch import Tensor

from fluxkern.blocks import BoundBlock
from fluxkern.program import compile_group

__all__ = ["_Group"]


class _Group:
    """Fused blocks evaluated by one op call: their points x [P, d] and their residual program.

    Attributes:
        blocks: The bound blocks, in the order of the program's residuals.
        x: The distinct point sets of the blocks, stacked [P, d].
        program: The compiled residual program (see :func:`fluxkern.program.compile_group`).
        n: The rows of the op's C: points, or pairs for a paired group.
    """

    def __init__(self, blocks: list[BoundBlock], dtype: torch.dtype, device: torch.device):
        self.blocks = blocks
        self.x, self.program = compile_group(blocks, dtype, device)
        rows = self.x.shape[0]
        self.n = rows // 2 if self.program.paired else rows

    def split(self, c: Tensor) -> dict[str, Tensor]:
        """The op's C [N, R] as each block's C (views), by block name."""
        return {name: c[r0:r1, c0:c1] for name, r0, r1, c0, c1 in self.program.slices}
