"""Point blocks of the loss: objectives and constraints, and their compilation to monomial tables.

A block holds residual expressions, the points where they are evaluated (or two paired point sets
for periodic conditions) and per-point data. Binding a block to a model checks every symbol
against the model's sizes and the supplied data, and compiles polynomial residuals of field
degree <= 3 to the fused kernel's monomial table.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from fluxkern.expr import Expr

__all__ = ["Block", "BoundBlock", "Constraint", "Objective"]

REDUCTIONS = ("mean", "sum")
FORMS = ("squared", "signed")
MULTIPLIERS = ("pointwise", "global")
MAX_FIELD_DEGREE = 3
MAX_RESIDUALS = 32

PointsArg = Tensor | tuple[Tensor, Tensor]


def _as_list(exprs: Expr | Sequence[Expr], name: str) -> list[Expr]:
    items = [exprs] if isinstance(exprs, Expr) else list(exprs)
    if not items:
        raise ValueError(f"block {name!r}: no expressions given")
    if len(items) > MAX_RESIDUALS:
        raise ValueError(f"block {name!r}: {len(items)} expressions; at most {MAX_RESIDUALS}")
    for i, e in enumerate(items):
        if not isinstance(e, Expr):
            raise TypeError(
                f"block {name!r}: expression {i} is a {type(e).__name__}, not a fluxkern "
                "expression (build residuals from fluxkern.inputs/outputs/data symbols)"
            )
    return items


def _check_choice(value: str, choices: tuple[str, ...], what: str, name: str) -> None:
    if value not in choices:
        raise ValueError(f"block {name!r}: unknown {what} {value!r}; choose from {choices}")


class Block:
    """Common part of Objective and Constraint (see those)."""

    kind = "block"

    def __init__(
        self,
        name: str,
        exprs: Expr | Sequence[Expr],
        points: PointsArg,
        data: Mapping[str, Tensor] | None,
        reduction: str,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a block needs a non-empty name, got {name!r}")
        self.name = name
        self.exprs = _as_list(exprs, name)
        _check_choice(reduction, REDUCTIONS, "reduction", name)
        self.reduction = reduction
        self.paired = isinstance(points, tuple)
        if self.paired:
            if len(points) != 2 or not all(isinstance(p, Tensor) for p in points):
                raise ValueError(f"block {name!r}: paired points must be a tuple (a, b) of tensors")
            a, b = points
            if a.shape != b.shape or a.dim() != 2:
                raise ValueError(
                    f"block {name!r}: paired point sets must both be [N, d], got {list(a.shape)} "
                    f"and {list(b.shape)}"
                )
            self.points = torch.cat([a, b], 0)
        else:
            if not isinstance(points, Tensor) or points.dim() != 2:
                got = list(points.shape) if isinstance(points, Tensor) else type(points).__name__
                raise ValueError(f"block {name!r}: points must be a [N, d] tensor, got {got}")
            self.points = points
        self.n = self.points.shape[0] // 2 if self.paired else self.points.shape[0]
        # The points (pairs) of the whole block, which a "mean" divides by: n, unless this
        # block is one rank's shard of a larger one (fluxkern.distributed.shard_block).
        self.n_global = self.n
        self.data = dict(data or {})
        for key, val in self.data.items():
            if not isinstance(val, Tensor):
                raise TypeError(f"block {name!r}: data column {key!r} must be a tensor")
            if val.dim() == 2 and val.shape[1] == 1:
                val = val[:, 0]
            rows = self.points.shape[0]
            if self.paired and val.dim() == 1 and val.shape[0] == self.n:
                val = torch.cat([val, val])  # the same data on both sides of each pair
            if val.dim() != 1 or val.shape[0] != rows:
                raise ValueError(
                    f"block {name!r}: data column {key!r} has shape {list(val.shape)}, expected "
                    f"[{self.n}] (one value per point{' or pair' if self.paired else ''})"
                )
            self.data[key] = val

    @property
    def n_res(self) -> int:
        return len(self.exprs)

    def bind(self, d: int, m: int, dtype: torch.dtype, device: torch.device) -> BoundBlock:
        """Checks the block against a model with d inputs and m outputs and compiles it.

        Raises:
            ValueError: A symbol out of range, a data column not supplied, a points width that is
                not d, or a higher-than-first derivative.
        """
        name = self.name
        if self.points.shape[1] != d:
            raise ValueError(
                f"block {name!r}: points have {self.points.shape[1]} columns but the model "
                f"has {d} inputs"
            )
        for e in self.exprs:
            for sym in e.symbols().values():
                if sym.kind == "input" and sym.index >= d:
                    raise ValueError(
                        f"block {name!r}: input {sym.name!r} is column {sym.index} but the model "
                        f"has {d} inputs"
                    )
                if sym.kind == "output" and sym.index >= m:
                    raise ValueError(
                        f"block {name!r}: output {sym.name!r} is output {sym.index} but the model "
                        f"has {m} outputs"
                    )
                if sym.kind == "data" and sym.name not in self.data:
                    have = sorted(self.data) or "none"
                    raise ValueError(
                        f"block {name!r}: data column {sym.name!r} is used but not supplied "
                        f"(supplied: {have})"
                    )
        x = self.points.to(dtype=dtype, device=device)
        data = {k: v.to(dtype=dtype, device=device) for k, v in self.data.items()}
        fused = all(e.is_polynomial and e.field_degree() <= MAX_FIELD_DEGREE for e in self.exprs)
        if not fused:
            bad = [repr(e) for e in self.exprs if not e.is_polynomial]
            bad += [repr(e) for e in self.exprs if e.is_polynomial and e.field_degree() > 3]
            _warn_once(
                f"block {name!r}: {bad[0]} is not a polynomial of degree <= 3 in outputs and "
                "derivatives; this block runs in torch on top of the fused jet (slower)"
            )
            return BoundBlock(self, x, data, None, None, None, fused=False)
        table, coef, col_atoms, unknown_rows = _compile(self.exprs, m, d)
        cols = _coefficient_columns(col_atoms, x, data)
        return BoundBlock(
            self,
            x,
            data,
            torch.tensor(table, dtype=torch.int32, device=device).reshape(-1, 5),
            torch.tensor(coef, dtype=dtype, device=device),
            cols,
            fused=True,
            unknown_rows=unknown_rows if any(unknown_rows) else None,
        )


_WARNED: set[str] = set()


def _warn_once(msg: str) -> None:
    if msg not in _WARNED:
        _WARNED.add(msg)
        warnings.warn(msg, stacklevel=3)


def _compile(exprs: list[Expr], m: int, d: int):
    """Monomial table rows, constant coefficients, the coefficient-column atom tuples, and each
    row's unknown factors (names, repeated for powers; empty for none)."""
    table: list[list[int]] = []
    coef: list[float] = []
    unknown_rows: list[tuple[str, ...]] = []
    col_index: dict[tuple, int] = {}
    for i, e in enumerate(exprs):
        for mono, c in e.polynomial().items():
            fields = [a for a in mono if a[0] in ("y", "J")]
            unknown_rows.append(tuple(sorted(a[1] for a in mono if a[0] == "k")))
            cfacs = tuple(a for a in mono if a[0] not in ("y", "J", "k"))
            f_idx = [a[1] if a[0] == "y" else m + a[1] * d + a[2] for a in fields]
            f_idx += [-1] * (3 - len(f_idx))
            col = -1
            if cfacs:
                col = col_index.setdefault(cfacs, len(col_index))
            table.append([i, col, *f_idx])
            coef.append(c)
    if not table:  # all-zero residuals: one row with coefficient 0 keeps shapes valid
        table.append([0, -1, -1, -1, -1])
        coef.append(0.0)
        unknown_rows.append(())
    atoms = sorted(col_index, key=col_index.get)
    return table, coef, atoms, unknown_rows


def _coefficient_columns(col_atoms: list[tuple], x: Tensor, data: Mapping[str, Tensor]) -> Tensor:
    cols = x.new_ones(x.shape[0], len(col_atoms))
    for k, atoms in enumerate(col_atoms):
        for a in atoms:
            cols[:, k] *= x[:, a[1]] if a[0] == "x" else data[a[1]]
    return cols


@dataclass
class BoundBlock:
    """A block checked against a model, with its tensors on the model's dtype and device."""

    block: Block
    x: Tensor  # [P, d]
    data: dict[str, Tensor]  # each [P]
    table: Tensor | None  # [M, 5] int32
    coef: Tensor | None  # [M]
    cols: Tensor | None  # [P, K]
    fused: bool
    # per table row, the names of the unknowns multiplying its coefficient (None: no unknowns)
    unknown_rows: list[tuple[str, ...]] | None = None

    def residuals_torch(
        self, y: Tensor, jac: Tensor, unknowns: Mapping[str, Tensor] | None = None
    ) -> Tensor:
        """Residuals r [N, R] from y [P, m] and J [P, m, d] by torch evaluation of the exprs.

        Args:
            y: Network values [P, m].
            jac: Input Jacobian [P, m, d].
            unknowns: The values of the unknowns the expressions use, under the keys of
                :meth:`fluxkern.unknowns.UnknownSet.env` (none needed without unknowns).
        """
        env = {**self.data, **unknowns} if unknowns else self.data
        e = torch.stack([ex.evaluate(env, y, jac, self.x) for ex in self.block.exprs], 1)
        n = self.block.n
        return e[:n] - e[n:] if self.block.paired else e


class Objective(Block):
    """A residual family minimised as the objective: weight * R(sum_i r_i^2).

    Args:
        name: Unique name of the block.
        exprs: One expression or a list (the residuals r_i).
        points: Points [N, d], or a tuple (a, b) of paired point sets: r = e(a) - e(b).
        data: Per-point data columns by name, each [N] (for pairs [N] for both sides or [2N]).
        weight: The objective's weight w.
        reduction: "mean" or "sum" over the block's points.
    """

    kind = "objective"

    def __init__(
        self,
        name: str,
        exprs: Expr | Sequence[Expr],
        points: PointsArg,
        data: Mapping[str, Tensor] | None = None,
        weight: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(name, exprs, points, data, reduction)
        self.weight = float(weight)


class Constraint(Block):
    """Residuals enforced as equality constraints with Lagrange multipliers (and a penalty).

    Contributes R(sum_i lambda_i C_i + mu_i / 2 C_i^2) with C_i = r_i^2 (form "squared") or r_i
    (form "signed").

    Args:
        name: Unique name of the block.
        exprs: One expression or a list (the constraint residuals r_i).
        points: Points [N, d], or a tuple (a, b) of paired point sets (periodic: r = e(a) - e(b)).
        data: Per-point data columns by name, each [N].
        form: "squared" or "signed".
        multiplier: "pointwise" (lambda [N, R]) or "global" (lambda [R]).
        reduction: "mean" or "sum" over the block's points.
        init: Initial multiplier value; None takes the dual rule's default (1 for rmsprop and
            capu, 0 for pecann).
        tolerance: A residual size up to which the constraint counts as met: the dual update
            sees max(|r| - tolerance, 0) instead of r (noisy data: the multipliers stop growing
            once the fit is within the noise). Pointwise multipliers compare each point's |r|;
            a global multiplier of a squared constraint compares the RMS of r over the block
            (with "mean"; a discrepancy principle: take the noise's standard deviation). None
            or 0: exact.
    """

    kind = "constraint"

    def __init__(
        self,
        name: str,
        exprs: Expr | Sequence[Expr],
        points: PointsArg,
        data: Mapping[str, Tensor] | None = None,
        form: str = "squared",
        multiplier: str = "pointwise",
        reduction: str = "mean",
        init: float | None = None,
        tolerance: float | None = None,
    ) -> None:
        super().__init__(name, exprs, points, data, reduction)
        _check_choice(form, FORMS, "form", name)
        _check_choice(multiplier, MULTIPLIERS, "multiplier", name)
        if tolerance is not None and not (isinstance(tolerance, (int, float)) and tolerance >= 0):
            raise ValueError(f"block {name!r}: tolerance must be a number >= 0, got {tolerance!r}")
        self.form = form
        self.multiplier = multiplier
        self.init = init
        self.tolerance = float(tolerance or 0.0)

    def within_tolerance(self, c: Tensor) -> Tensor:
        """C as the dual update sees it: the part of |r| beyond the tolerance (module doc of
        :class:`Constraint`), C itself without one.

        Args:
            c: Constraint values [N, R] (r^2 for "squared", r for "signed"), or their reduction
                [R] for a global multiplier.
        """
        tol = getattr(self, "tolerance", 0.0)
        if not tol:
            return c
        if self.form == "squared":
            return (c.clamp_min(0).sqrt() - tol).clamp_min(0).square()
        return c.sign() * (c.abs() - tol).clamp_min(0)
