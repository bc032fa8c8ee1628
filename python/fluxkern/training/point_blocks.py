"""Blocks on other rows of their points: several draws of a block joined into one
(:func:`concat_blocks`), or a block on some of its points (:func:`take_rows`). The unseen-point
check, the residual-based redraws and the final phase of a run with redraws build their
point sets with them."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from fluxkern.blocks import Block

__all__ = ["concat_blocks", "same_points", "take_rows"]


def concat_blocks(blocks: Sequence[Block]) -> Block:
    """One block on the points (pairs) and data of several draws of it (the first block's
    kind, expressions and options); the block itself when there is one.

    Args:
        blocks: Blocks of one name, from draws of the same problem.

    Returns:
        A shallow copy of the first block with every draw's rows, in order.
    """
    if len(blocks) == 1:
        return blocks[0]
    first = blocks[0]

    def rows(get: Callable[[Block], Tensor]) -> Tensor:
        if not first.paired:
            return torch.cat([get(b) for b in blocks])
        a = [get(b)[: b.n] for b in blocks]
        return torch.cat(a + [get(b)[b.n :] for b in blocks])

    whole = copy.copy(first)
    whole.points = rows(lambda b: b.points)
    whole.data = {k: rows(lambda b, k=k: b.data[k]) for k in first.data}
    whole.n = whole.n_global = sum(b.n for b in blocks)
    return whole


def take_rows(block: Block, index: Tensor, points: Tensor | None = None) -> Block:
    """The block on the points (pairs) `index` picks, with their data.

    Args:
        block: The block.
        index: Row numbers [n] (int64) of its points (of pairs, for a paired block).
        points: The picked points when the caller has them already (blocks on one point set
            then share one tensor, and one jet in the loss); None picks them here.

    Returns:
        A shallow copy of the block on n points (pairs).
    """
    total = block.n
    index = index.to(block.points.device)

    def rows(t: Tensor) -> Tensor:
        return torch.cat([t[index], t[total + index]]) if block.paired else t[index]

    part = copy.copy(block)
    part.points = points if points is not None and not block.paired else rows(block.points)
    part.data = {k: rows(v) for k, v in block.data.items()}
    part.n = part.n_global = int(index.numel())
    return part


def same_points(a: Tensor, b: Tensor) -> bool:
    """Whether two point tensors hold the same points (shape and values)."""
    if a.shape != b.shape:
        return False
    return bool(torch.equal(a, b.to(dtype=a.dtype, device=a.device)))
