"""The compiled residual program: what the fused loss op evaluates for one group of point blocks.

A :class:`ResidualProgram` is built once from the bound blocks of a fused group (see
:func:`compile_group`) and is immutable afterwards. It holds everything about the group's
residuals and their reduction into the loss: the monomial table, its coefficients, the per-point
coefficient columns, each residual's form and reduction factor, the residual count and the
pairing. What changes between calls stays outside: the points x, the network (shift, scale,
weights, biases, activation) and the dual state (lam, mu).

The op ``torch.ops.fluxkern.block_loss`` takes all of it as 16 positional arguments (its
``TORCH_LIBRARY`` schema). :meth:`ResidualProgram.op_args` is the one place that packs a program
and the per-call arguments into that schema, and :func:`split_op_args` the one place that unpacks
them again (for the fake kernel, the autograd formula and tests that drive the raw op).

Residuals and monomials. A group has R residuals r_0 .. r_{R-1}; each is a sum of monomials

    r_i(p) = sum over table rows t with table[t, 0] == i of
             coef[t] * cols[p, table[t, 1]] * F[p, table[t, 2]] * F[p, table[t, 3]]
             * F[p, table[t, 4]]

at point p, where an index -1 stands for the factor 1, and F[p] is the point's field vector of
length m + m d (m network outputs, d inputs): F[p, f] = y_f for f < m, and for f >= m the entry
f - m of the row-major Jacobian J [m, d], i.e. dy_o/dx_j at f = m + o d + j. For a paired group
the rows of x are two point sets a and b of N points each (x = cat(a, b)) and
r_i = e_i(a) - e_i(b), with e_i the sum above.

Loss. With C_i = r_i^2 where squared[i] is 1 and C_i = r_i where it is 0,

    L = sum over points n < N and residuals i of red[i] * (lam[n, i] C_i + mu[i] / 2 C_i^2)

(lam [N, R] pointwise or [R] global, broadcast). An objective is lam = weight, mu = 0, squared = 1.

Unknowns. A monomial's coefficient may carry trainable unknowns (fluxkern.unknown): coef[t] is
then its constant times their product (:meth:`ResidualProgram.with_unknowns`, differentiable),
and the op, called with coef_grad, also returns grad_coef[t] = dL/dcoef[t] = sum over points of
dL/dr_i times monomial t's value without its coefficient, from the same pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch
from torch import Tensor

from fluxkern.blocks import Block, BoundBlock, Objective
from fluxkern.specs import MlpSpec

__all__ = [
    "BlockSlice",
    "ResidualProgram",
    "TABLE_COLUMNS",
    "compile_group",
    "forms_and_reductions",
    "split_op_args",
]

# The columns of a monomial table row (ResidualProgram.table), in order.
TABLE_COLUMNS = ("residual", "column", "field0", "field1", "field2")


class BlockSlice(NamedTuple):
    """Where one block's constraint values sit in the op's C [N, R]: C[row0:row1, col0:col1]."""

    name: str  # the block's name
    row0: int  # first point (pair) of the block in the group's points
    row1: int  # one past its last point (pair)
    col0: int  # its first residual in the group's residual numbering
    col1: int  # one past its last residual


@dataclass(frozen=True, eq=False)
class ResidualProgram:
    """The residuals of one fused group and their reduction into the loss (see the module doc).

    Shapes: P rows of points (P = 2N for a paired group, else N), M monomials, K coefficient
    columns, R residuals.

    Attributes:
        table: Monomial table [M, 5] int32, one row a monomial, columns (TABLE_COLUMNS):
            0 "residual": the residual i (0 <= i < R) the monomial adds to;
            1 "column": the coefficient column k of ``cols`` that multiplies it (-1: none);
            2-4 "field0".."field2": up to three field factors, each -1 (none), f < m (y_f) or
            f >= m (element f - m of the row-major J [m, d]).
        coef: Constant coefficient of each monomial [M], the dtype of the points.
        cols: Per-point coefficient columns [P, K]: products of inputs and data columns that
            multiply monomials. In a group of blocks on several point sets (``segmented``) each
            block's columns are zero off its own rows, and each block has one more column, its
            indicator (1 on its rows), standing for "no column"; so every residual vanishes off
            its block's rows.
        squared: Form of each residual [R]: 1 for C = r^2 ("squared" constraints and every
            objective), 0 for C = r ("signed" constraints).
        red: Reduction factor of each residual [R]: 1 / N_block for a "mean" block, 1 for "sum".
        n_res: Number of residuals R.
        paired: The points are two sets a, b of N points (x = cat(a, b)) and r = e(a) - e(b).
        segmented: The group's blocks lie on more than one point set (stacked in x).
        slices: Each block's place in C [N, R], in the order of the residual numbering.
        unknowns: Names of the trainable unknowns in the coefficients (fluxkern.unknown), U.
        factors: [M, F] int64: the unknowns multiplying each monomial's coefficient, as indices
            into ``unknowns`` (U: no factor); None without unknowns. The op's coefficients are
            ``coef * prod_f value[factors[:, f]]`` (:meth:`with_unknowns`).
    """

    table: Tensor  # [M, 5] int32
    coef: Tensor  # [M]
    cols: Tensor  # [P, K]
    squared: Tensor  # [R]
    red: Tensor  # [R]
    n_res: int
    paired: bool
    segmented: bool = False
    slices: tuple[BlockSlice, ...] = ()
    unknowns: tuple[str, ...] = ()
    factors: Tensor | None = None  # [M, F] int64

    @property
    def coef_grad(self) -> bool:
        """Whether the op is asked for dL/dcoef: where coef requires grad (unknowns in it)."""
        return bool(self.coef.requires_grad)

    def with_unknowns(self, values: Mapping[str, Tensor]) -> ResidualProgram:
        """This program with the unknowns' values multiplied into its coefficients.

        Args:
            values: Each unknown's value (0-d tensors; differentiable: the coefficients are).

        Returns:
            A program whose coef [M] is the constant times the product of its unknowns (self
            when there are none).
        """
        if not self.unknowns or self.factors is None:
            return self
        vals = torch.stack([values[n].to(self.coef.dtype) for n in self.unknowns])  # [U]
        ext = torch.cat([vals, vals.new_ones(1)])  # [U + 1]: index U is the factor 1
        return replace(self, coef=self.coef * ext[self.factors].prod(1))

    def op_args(self, x: Tensor, net: MlpSpec, lam: Tensor, mu: Tensor) -> list[Any]:
        """The positional arguments of ``torch.ops.fluxkern.block_loss`` (its schema's order).

        Args:
            x: Points [P, d].
            net: The MLP (fluxkern.nn.MlpSpec: shift, scale, weights, biases, activation).
            lam: Multipliers [N, R] (pointwise) or [R] (global).
            mu: Penalties [R].

        Returns:
            x, shift, scale, weights, biases, activation, cols, table, coef, lam, mu, squared,
            red, n_res, paired, coef_grad.
        """
        return [
            x,
            net.shift,
            net.scale,
            list(net.weights),
            list(net.biases),
            net.activation,
            self.cols,
            self.table,
            self.coef,
            lam,
            mu,
            self.squared,
            self.red,
            self.n_res,
            self.paired,
            self.coef_grad,
        ]


def split_op_args(args: Sequence[Any]) -> tuple[ResidualProgram, Tensor, MlpSpec, Tensor, Tensor]:
    """The inverse of :meth:`ResidualProgram.op_args`.

    Args:
        args: The 15 or 16 positional arguments of ``torch.ops.fluxkern.block_loss``.

    Returns:
        (program, x, net, lam, mu): the arguments of
        :func:`fluxkern.ops.block_loss` and :func:`fluxkern.reference.block_loss`. The program
        has no slices and is not segmented (the op does not need to know).
    """
    x, shift, scale, weights, biases, activation, cols, table, coef, lam, mu = args[:11]
    squared, red, n_res, paired = args[11:15]
    program = ResidualProgram(table, coef, cols, squared, red, n_res, paired)
    net = MlpSpec(shift, scale, list(weights), list(biases), activation)
    return program, x, net, lam, mu


def forms_and_reductions(
    t: Block, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor]:
    """squared [R] (1 for C = r^2) and red [R] (1/N for a mean, 1 for a sum) of one block.

    N is the block's global point count (t.n_global): a distributed rank's shard of a "mean"
    block divides by the points of the whole block, so the ranks' losses add up to its loss.
    """
    squared = isinstance(t, Objective) or t.form == "squared"
    sq = torch.full((t.n_res,), 1.0 if squared else 0.0, dtype=dtype, device=device)
    n = t.n_global
    red = torch.full(
        (t.n_res,), 1.0 / n if t.reduction == "mean" and n else 1.0, dtype=dtype, device=device
    )
    return sq, red


def _point_sets(blocks: Sequence[BoundBlock]) -> tuple[list[Tensor], list[int]]:
    """The distinct point sets of the blocks (by identity or equal values), and each block's."""
    sets: list[Tensor] = []
    seg: list[int] = []
    for b in blocks:
        for i, pts in enumerate(sets):
            if pts is b.x or (pts.shape == b.x.shape and torch.equal(pts, b.x)):
                seg.append(i)
                break
        else:
            sets.append(b.x)
            seg.append(len(sets) - 1)
    return sets, seg


def compile_group(
    blocks: Sequence[BoundBlock], dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, ResidualProgram]:
    """Compiles fused blocks into one op call: one jet over the union of their point sets.

    Blocks on different point sets share the call through their coefficient columns (see
    ``ResidualProgram.cols``). A paired group must hold blocks on one paired point set only.

    Args:
        blocks: Bound, fused blocks (each with its table, coef and cols), all paired or none.
        dtype: The model's dtype.
        device: The model's device.

    Returns:
        The group's points x [P, d] (the distinct point sets stacked) and its program.
    """
    paired = blocks[0].block.paired
    sets, seg = _point_sets(blocks)
    starts = [0]
    for pts in sets:
        starts.append(starts[-1] + pts.shape[0])
    x = sets[0] if len(sets) == 1 else torch.cat(sets)
    rows = x.shape[0]
    n = rows // 2 if paired else rows
    segmented = len(sets) > 1
    tables, coefs, cols, slices = [], [], [], []
    names = sorted({n for b in blocks for row in (b.unknown_rows or ()) for n in row})
    rows_unknowns: list[tuple[str, ...]] = []
    sq, red = [], []
    c0 = k0 = 0
    for b, s in zip(blocks, seg, strict=True):
        t = b.table.clone()
        t[:, 0] += c0
        k_b = b.cols.shape[1]
        r0, r1 = (starts[s], starts[s + 1]) if segmented else (0, n)
        if segmented:
            full = b.cols.new_zeros(rows, k_b + 1)  # [P, K_b + 1], last: the indicator
            full[r0:r1, :k_b] = b.cols
            full[r0:r1, k_b] = 1
            t[:, 1] = torch.where(t[:, 1] >= 0, t[:, 1] + k0, torch.full_like(t[:, 1], k0 + k_b))
            cols.append(full)
            k0 += k_b + 1
        else:
            t[:, 1] = torch.where(t[:, 1] >= 0, t[:, 1] + k0, t[:, 1])
            cols.append(b.cols)
            k0 += k_b
        tables.append(t)
        coefs.append(b.coef)
        rows_unknowns += b.unknown_rows or [()] * b.table.shape[0]
        slices.append(BlockSlice(b.block.name, r0, r1, c0, c0 + b.block.n_res))
        q, r = forms_and_reductions(b.block, dtype, device)
        sq.append(q)
        red.append(r)
        c0 += b.block.n_res
    program = ResidualProgram(
        table=torch.cat(tables),
        coef=torch.cat(coefs),
        cols=torch.cat(cols, 1),
        squared=torch.cat(sq),
        red=torch.cat(red),
        n_res=c0,
        paired=paired,
        segmented=segmented,
        slices=tuple(slices),
        unknowns=tuple(names),
        factors=_factors(rows_unknowns, names, device) if names else None,
    )
    return x, program


def _factors(rows: list[tuple[str, ...]], names: list[str], device: torch.device) -> Tensor:
    """[M, F] indices of each row's unknown factors into names (len(names): the factor 1)."""
    width = max(len(r) for r in rows)
    index = {n: i for i, n in enumerate(names)}
    out = [[index[n] for n in r] + [len(names)] * (width - len(r)) for r in rows]
    return torch.tensor(out, dtype=torch.int64, device=device)
