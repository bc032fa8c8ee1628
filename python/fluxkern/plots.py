"""PNG plots of a run: solution, error, loss and constraint history, multiplier map."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["write_all"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: str) -> None:
    """Writes fig as PNG to path atomically (a failed write leaves an older plot as it was).

    Raises:
        OSError: The file could not be written (the figure is closed all the same).
    """
    tmp = path + ".tmp"
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    except OSError:
        if os.path.isfile(tmp):
            os.remove(tmp)
        raise
    finally:
        plt.close(fig)


def _field_panels(path: str, title: str, grid, values: dict[str, np.ndarray], names) -> None:
    plt = _plt()
    k = len(values)
    if k == 0:
        return
    fig, axes = plt.subplots(1, k, figsize=(4.2 * k, 3.6), squeeze=False)
    pts = grid.points.detach().cpu().numpy()
    for ax, (name, val) in zip(axes[0], values.items(), strict=True):
        if len(grid.shape) == 1:
            ax.plot(pts[:, 0], val.reshape(-1))
            ax.set_xlabel(names[0])
        else:
            a = pts[:, 0].reshape(grid.shape)
            b = pts[:, 1].reshape(grid.shape)
            im = ax.pcolormesh(a, b, val.reshape(grid.shape), shading="auto", cmap="viridis")
            fig.colorbar(im, ax=ax)
            ax.set_xlabel(names[0])
            ax.set_ylabel(names[1])
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    _save(plt, fig, path)


def write_all(
    out: str,
    problem,
    grid,
    fields: dict[str, Tensor],
    exact: dict[str, Tensor],
    history: dict[str, list[float]],
    al: Any,
) -> None:
    """Writes solution.png, error.png, history.png and (flux form) multipliers.png into out."""
    plt = _plt()
    names = problem.input_names
    vals = {k: v.detach().cpu().numpy() for k, v in fields.items()}
    _field_panels(
        os.path.join(out, "solution.png"), f"{problem.name}: prediction", grid, vals, names
    )
    errs = {k: np.abs(vals[k] - exact[k].detach().cpu().numpy()) for k in vals if k in exact}
    _field_panels(
        os.path.join(out, "error.png"), f"{problem.name}: |prediction - exact|", grid, errs, names
    )

    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.semilogy(epochs, np.abs(history["loss"]), label="loss")
    viol = np.asarray(history["max_violation"], dtype=float)
    if np.isfinite(viol).any():
        ax.semilogy(epochs, viol, label="max |C|")
    ax.set_xlabel("epoch")
    ax.legend()
    ax.set_title(f"{problem.name}: loss and constraint history")
    fig.tight_layout()
    _save(plt, fig, os.path.join(out, "history.png"))

    if al is None:
        return
    pointwise = [(k, v) for k, v in al.multipliers.items() if v.dim() == 2 and v.shape[0] > 0]
    if not pointwise:
        return
    fig, axes = plt.subplots(1, len(pointwise), figsize=(4.2 * len(pointwise), 3.6), squeeze=False)
    for ax, (name, lam) in zip(axes[0], pointwise, strict=True):
        b = al.bound[name]
        pts = b.x[: b.block.n].detach().cpu().numpy()
        val = lam.detach().cpu().numpy().sum(1)
        if pts.shape[1] == 1:
            ax.plot(pts[:, 0], val, ".")
        else:
            sc = ax.scatter(pts[:, 0], pts[:, 1], c=val, s=4, cmap="magma")
            fig.colorbar(sc, ax=ax)
            ax.set_ylabel(names[1])
        ax.set_xlabel(names[0])
        ax.set_title(f"lambda: {name}")
    fig.suptitle(f"{problem.name}: pointwise multipliers (sum over expressions)")
    fig.tight_layout()
    _save(plt, fig, os.path.join(out, "multipliers.png"))
