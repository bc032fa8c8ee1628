"""The final phase of a run with redraws: its last part on one fixed, denser point set.

With redraws the network is fitted to a new draw every few epochs, and the error jumps at each
redraw (2-4x on a moving front) before the next epochs bring it down: the answer would depend on
the epoch the run stops at. So the last `fraction` of a run (of its epochs, or of its time
limit, whichever comes first) trains on one set that is not redrawn again, with `scale` times
the points: `scale` plain draws joined, or for residual-based redraws one such draw of `scale`
times the points. The run then ends converged on that set, whenever it stops inside the phase.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fluxkern.blocks import Block
from fluxkern.training.point_blocks import concat_blocks
from fluxkern.training.rad import RadSettings, rad_draw

__all__ = ["FINAL_SEED_OFFSET", "FinalPhase"]

# The final set of a run of seed s is drawn with seeds s + FINAL_SEED_OFFSET + 101 j.
FINAL_SEED_OFFSET = 3_000_017
_STRIDE = 101


@dataclass(frozen=True)
class FinalPhase:
    """When the final phase starts and what it trains on.

    Attributes:
        fraction: The part of the run on the fixed set, in (0, 1): it starts after
            ceil((1 - fraction) * epochs) epochs, or once (1 - fraction) * time_limit seconds
            of training have passed.
        scale: Points of the fixed set per point of a draw (an integer >= 1).
        time_limit: The run's time limit in seconds, or None.
    """

    fraction: float = 0.1
    scale: int = 2
    time_limit: float | None = None

    def __post_init__(self) -> None:
        f = self.fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1:
            raise ValueError(f"the final phase's fraction must be in (0, 1); got {f!r}")
        s = self.scale
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"the final phase's scale must be an integer >= 1; got {s!r}")

    def start_epoch(self, epochs: int) -> int:
        """The epochs run before the phase when the epoch count ends the run."""
        return math.ceil((1 - self.fraction) * epochs)

    def due(self, epoch: int, epochs: int, elapsed: float) -> bool:
        """Whether the phase starts after `epoch` of `epochs`, at `elapsed` seconds."""
        if epoch >= epochs:
            return False  # nothing left to train on it
        limit = self.time_limit
        by_time = limit is not None and elapsed >= (1 - self.fraction) * limit
        return epoch >= self.start_epoch(epochs) or by_time

    def blocks(
        self,
        model: torch.nn.Module,
        draw: Callable[[int], Sequence[Block]],
        seed: int,
        rad: RadSettings | None = None,
        picked: Mapping[str, Tensor] | None = None,
        backend: str | None = None,
    ) -> tuple[list[Block], dict[str, Any]]:
        """The fixed set's blocks and what a resume needs to draw them again.

        Args:
            model: The network (weighs the candidates of a residual-based set).
            draw: The problem's draw: seed -> blocks.
            seed: The run's seed.
            rad: None for plain draws, else the residual-based draw's settings.
            picked: The residual-based draw's rows saved by a previous call (a resume).
            backend: The jet's backend.

        Returns:
            The blocks, and the picked rows ({} for plain draws).
        """
        s = seed + FINAL_SEED_OFFSET
        if rad is not None:
            scale = min(self.scale, rad.candidates - 1)
            return rad_draw(model, draw, s, rad, scale=scale, picked=picked, backend=backend)
        draws = [list(draw(s + _STRIDE * j)) for j in range(self.scale)]
        return [
            concat_blocks([next(b for b in d if b.name == t.name) for d in draws]) for t in draws[0]
        ], {}
