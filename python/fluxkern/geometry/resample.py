"""Point sets re-drawn on a fixed epoch schedule: :class:`Resampler`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fluxkern.geometry._checks import _check_int

__all__ = ["Resampler"]


class Resampler:
    """Point sets re-drawn every ``every`` epochs.

    ``points(epoch)`` returns ``sampler_fn(seed=seed + epoch // every)``, cached while the seed
    does not change, so the schedule is deterministic and independent of the call pattern
    (epochs may be queried in any order).

    Example:
        >>> dom = Rectangle([0, 0], [1, 1])
        >>> res = Resampler(lambda seed: dom.sample_interior(256, "uniform", seed=seed), 100)
        >>> x = res.points(0)  # the same tensor for epochs 0..99, a new draw at 100

    Args:
        sampler_fn: Callable taking a keyword ``seed`` and returning anything (a tensor, or a
            tuple such as ``(points, normals)``).
        every: Epochs per draw, >= 1.
        seed: Offset added to ``epoch // every``.

    Attributes:
        num_draws: How many times ``sampler_fn`` has been called.
    """

    def __init__(self, sampler_fn: Callable[..., Any], every: int, *, seed: int = 0) -> None:
        if not callable(sampler_fn):
            raise ValueError(f"sampler_fn must be callable, got {sampler_fn!r}")
        self.sampler_fn = sampler_fn
        self.every = _check_int(every, "every", 1)
        self.seed = _check_int(seed, "seed")
        self.num_draws = 0
        self._seed: int | None = None
        self._value: Any = None

    def __repr__(self) -> str:
        return f"Resampler(every={self.every}, seed={self.seed})"

    def seed_for(self, epoch: int) -> int:
        """Seed used for ``epoch``: ``seed + epoch // every``."""
        return self.seed + _check_int(epoch, "epoch", 0) // self.every

    def redraws_at(self, epoch: int) -> bool:
        """True if ``epoch`` starts a new draw (``epoch % every == 0``, epoch 0 included)."""
        return _check_int(epoch, "epoch", 0) % self.every == 0

    def points(self, epoch: int) -> Any:
        """The point set of ``epoch`` (drawn on first use of its seed)."""
        s = self.seed_for(epoch)
        if s != self._seed:
            self._value = self.sampler_fn(seed=s)
            self._seed = s
            self.num_draws += 1
        return self._value
