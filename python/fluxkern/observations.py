"""Observations as a loss term: measured values of outputs or first derivatives at given points.

``fluxkern.observe("sensors", points, {u: values})`` is a block whose residuals are
``expr - value`` at the measurement points, by default a :class:`~fluxkern.blocks.Constraint`
(pointwise multipliers, enforced by the run's dual rule: no hand-tuned data weight). Measured data
is noisy, and an exact constraint chases the noise (its multipliers grow as long as the misfit is
not zero). Two explicit ways not to:

- ``tolerance=tau``: the dual update only sees the part of |r| beyond tau (the multipliers stop
  growing at points fitted to within tau); take tau about 2-3 times the noise's standard deviation;
- ``penalty=w``: the observations become an :class:`~fluxkern.blocks.Objective` term,
  ``w * mean (expr - value)^2`` (least squares with a fixed weight, the classical recipe).

:func:`read_observations` loads points and values from a CSV file (a header row names the
columns) or an NPZ file (one array per name).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fluxkern.blocks import Constraint, Objective
from fluxkern.expr import Expr, data

__all__ = ["observe", "read_observations"]


def _as_tensor(values: Any, what: str) -> Tensor:
    try:
        t = torch.as_tensor(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError):
        raise TypeError(
            f"{what} must be numbers (a tensor or an array), got {type(values).__name__}"
        ) from None
    return t


def observe(
    name: str,
    points: Any,
    values: Mapping[Expr, Any],
    *,
    tolerance: float | None = None,
    penalty: float | None = None,
    multiplier: str = "pointwise",
    form: str = "squared",
) -> Constraint | Objective:
    """A block that makes expressions match measured values at points.

    Args:
        name: The block's name (unique among the problem's blocks).
        points: Measurement points [N, d] (tensor or array).
        values: For each observed expression (an output ``u``, a derivative ``u.d(x)``, or any
            expression) its measured values [N].
        tolerance: Constraint form: the misfit below which the multipliers stop growing (about
            2-3 noise standard deviations); None: exact.
        penalty: Use a least-squares objective with this weight instead of a constraint.
        multiplier: "pointwise" or "global" multipliers (constraint form).
        form: "squared" or "signed" (constraint form).

    Returns:
        A Constraint (default) or an Objective (with ``penalty``) with one residual
        ``expr - value`` per observed expression.

    Raises:
        ValueError: No values, values not [N], points not [N, d], or both penalty and tolerance.
        TypeError: A key that is not an expression, or values that are not numbers.
    """
    pts = _as_tensor(points, f"observe({name!r}): points")
    if pts.dim() == 1:
        pts = pts.unsqueeze(1)
    if pts.dim() != 2 or pts.shape[0] == 0:
        raise ValueError(
            f"observe({name!r}): points must be [N, d] with N >= 1, got {list(pts.shape)}"
        )
    if not values:
        raise ValueError(f"observe({name!r}): give at least one observed expression and its values")
    if penalty is not None and tolerance is not None:
        raise ValueError(
            f"observe({name!r}): give tolerance (constraint) or penalty (objective), not both"
        )
    exprs, cols = [], {}
    for i, (expr, vals) in enumerate(values.items()):
        if not isinstance(expr, Expr):
            raise TypeError(
                f"observe({name!r}): keys must be expressions (e.g. u or u.d(x)), got {expr!r}"
            )
        v = _as_tensor(vals, f"observe({name!r}): values of {expr!r}").reshape(-1)
        if v.shape[0] != pts.shape[0]:
            raise ValueError(
                f"observe({name!r}): {v.shape[0]} values of {expr!r} for {pts.shape[0]} points"
            )
        col = f"_observed_{i}"
        cols[col] = v
        exprs.append(expr - data(col))
    if penalty is not None:
        return Objective(name, exprs, pts, data=cols, weight=float(penalty))
    return Constraint(
        name, exprs, pts, data=cols, form=form, multiplier=multiplier, tolerance=tolerance
    )


def read_observations(
    path: str | os.PathLike[str], inputs: str | Sequence[str]
) -> tuple[Tensor, dict[str, Tensor]]:
    """Points and measured values from a CSV or NPZ file.

    A CSV file has a header row of column names and one row per measurement; an NPZ file one
    1-D array per name (or a 2-D array named ``points`` for the inputs). The input columns form
    the points, every other column is a measured quantity.

    Args:
        path: A ``.csv`` or ``.npz`` file.
        inputs: The input columns, in order ("x t" or ["x", "t"]).

    Returns:
        points [N, d] (float64) and the other columns by name, each [N].

    Raises:
        ValueError: A missing file, an unknown extension, a missing input column, ragged or
            non-numeric values.
    """
    names = inputs.replace(",", " ").split() if isinstance(inputs, str) else list(inputs)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"read_observations: no file {path!r}")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        columns = _read_csv(path)
    elif ext == ".npz":
        with np.load(path) as f:
            columns = {k: np.asarray(f[k], dtype=np.float64) for k in f.files}
        if "points" in columns and columns["points"].ndim == 2:
            pts = columns.pop("points")
            if pts.shape[1] != len(names):
                raise ValueError(
                    f"read_observations: {path}: points has {pts.shape[1]} columns, inputs "
                    f"{names} are {len(names)}"
                )
            for j, n in enumerate(names):
                columns[n] = pts[:, j]
    else:
        raise ValueError(f"read_observations: {path}: give a .csv or .npz file, not {ext!r}")
    missing = [n for n in names if n not in columns]
    if missing:
        raise ValueError(
            f"read_observations: {path} has no column {missing[0]!r} (columns: {sorted(columns)})"
        )
    sizes = {k: v.reshape(-1).shape[0] for k, v in columns.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"read_observations: {path}: columns of different lengths {sizes}")
    points = torch.stack([torch.as_tensor(columns[n].reshape(-1)) for n in names], 1)
    rest = {k: torch.as_tensor(v.reshape(-1)) for k, v in columns.items() if k not in names}
    return points, rest


def _read_csv(path: str) -> dict[str, np.ndarray]:
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and not r[0].lstrip().startswith("#")]
    if len(rows) < 2:
        raise ValueError(f"read_observations: {path}: needs a header row and at least one row")
    header = [h.strip() for h in rows[0]]
    if any(len(r) != len(header) for r in rows[1:]):
        raise ValueError(f"read_observations: {path}: rows do not all have {len(header)} values")
    try:
        table = np.array([[float(v) for v in r] for r in rows[1:]], dtype=np.float64)
    except ValueError:
        raise ValueError(f"read_observations: {path}: a value is not a number") from None
    return {h: table[:, j] for j, h in enumerate(header)}
