"""All PNG plots: a run's solution, error, loss and constraint history and multiplier map, and
the figures of fluxkern.diagnostics (gradient sensitivity, gradient histograms, loss landscapes).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from torch import Tensor

from fluxkern.runfiles import write_atomically

__all__ = ["plot_histograms", "plot_landscapes", "plot_sensitivity", "write_all"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: str) -> None:
    """Writes fig as PNG to path atomically (a failed write leaves an older plot as it was;
    fluxkern.runfiles.write_atomically: never through a planted file or link).

    Raises:
        OSError: The file could not be written (the figure is closed all the same).
    """
    try:
        write_atomically(path, lambda fh: fig.savefig(fh, dpi=110, format="png"))
    finally:
        plt.close(fig)


def _field_panels(path: str, title: str, grid, values: dict[str, np.ndarray], names) -> None:
    plt = _plt()
    k = len(values)
    if k == 0:
        return
    fig, axes = plt.subplots(1, k, figsize=(4.2 * k, 3.6), squeeze=False)
    pts = grid.points.detach().cpu().numpy()
    shape = tuple(grid.shape)
    # a grid over 3 or more inputs: the slice at the last value of each input past the second
    # (e.g. the final time of an (x, y, t) grid), named in the title
    last = (slice(None), slice(None)) + (-1,) * (len(shape) - 2)
    for ax, (name, val) in zip(axes[0], values.items(), strict=True):
        if len(shape) == 1:
            ax.plot(pts[:, 0], val.reshape(-1))
            ax.set_xlabel(names[0])
        else:
            a = pts[:, 0].reshape(shape)[last]
            b = pts[:, 1].reshape(shape)[last]
            im = ax.pcolormesh(a, b, val.reshape(shape)[last], shading="auto", cmap="viridis")
            fig.colorbar(im, ax=ax)
            ax.set_xlabel(names[0])
            ax.set_ylabel(names[1])
        ax.set_title(name)
    if len(shape) > 2:
        at = ", ".join(
            f"{names[j]} = {pts[:, j].reshape(shape)[last].flat[0]:.3g}"
            for j in range(2, len(shape))
        )
        title = f"{title} at {at}"
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
    """Writes solution.png, error.png, history.png, (flux form) multipliers.png and (with
    unknowns) unknowns.png into out."""
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
    _unknowns_panel(plt, out, problem.name, history, al)

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


def _unknowns_panel(plt: Any, out: str, title: str, history: dict[str, list], al: Any) -> None:
    """unknowns.png: each unknown's identified value per epoch (history's ``unknown_NAME``),
    its declared truth dashed; nothing for a run without unknowns."""
    from fluxkern.training.identified import NOTE_PREFIX

    keys = [k for k in history if k.startswith(NOTE_PREFIX)]
    if not keys:
        return
    sset = getattr(getattr(al, "model", None), "unknowns", None)
    symbols = getattr(sset, "symbols", {})
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        name = key[len(NOTE_PREFIX) :]
        vals = np.array([np.nan if v is None else v for v in history[key]], dtype=float)
        ax.plot(np.arange(1, len(vals) + 1), vals, label="identified")
        truth = getattr(symbols.get(name), "truth", None)
        if truth is not None:
            ax.axhline(truth, color="k", ls="--", lw=1, label="truth")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    fig.suptitle(f"{title}: identified unknowns")
    fig.tight_layout()
    _save(plt, fig, os.path.join(out, "unknowns.png"))


# ---------------------------------------------------------------------------------------------
# diagnostics (fluxkern.diagnostics)
# ---------------------------------------------------------------------------------------------
_COLORS = {0: "tab:green", 1: "tab:blue", 2: "tab:red"}
_LABELS = {0: "order 0 (fit u)", 1: "order 1 (flux form)", 2: "order 2 (PINN)"}


def _orders(result: dict[str, Any]) -> list[int]:
    """The derivative orders measured in a gradient_sensitivity result, in its order."""
    return [int(k) for k in result["orders"]]


def plot_sensitivity(result: dict[str, Any], path: str) -> None:
    """Writes sensitivity.png: relative gradient change against perturbation size, per order.

    Args:
        result: What fluxkern.diagnostics.gradient_sensitivity returns.
        path: The PNG file to write.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, xlabel in (
        (axes[0], "weight_perturbation", "weight perturbation ||delta|| / ||W|| per tensor"),
        (axes[1], "output_perturbation", "output perturbation eps (y + eps (smooth + rough))"),
    ):
        for order in _orders(result):
            d = result["orders"][str(order)][key]
            x = np.asarray(d["magnitudes"])
            med, lo, hi = (np.asarray(d[k]) for k in ("median", "q25", "q75"))
            ax.errorbar(
                x,
                med,
                yerr=[med - lo, hi - med],
                marker="o",
                capsize=3,
                color=_COLORS[order],
                label=_LABELS[order],
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("||g(perturbed) - g|| / ||g||  (median, quartiles)")
    axes[0].legend()
    fig.suptitle(
        f"{result['problem']}: gradient sensitivity at {result['at']} "
        f"(seed {result['seed']}, K = {result['samples']})"
    )
    fig.tight_layout()
    try:
        write_atomically(path, lambda fh: fig.savefig(fh, dpi=100, format="png"))
    finally:
        plt.close(fig)


def plot_histograms(
    result: dict[str, Any],
    grads: dict[int, Tensor],
    masks: dict[int, Tensor],
    slices: list[tuple[str, int, int]],
    path: str,
) -> None:
    """Writes histograms.png: per layer, the distribution of the gradient entries per order.

    Args:
        result: What fluxkern.diagnostics.gradient_sensitivity returns.
        grads: Per order, the flat parameter gradient on the first point draw.
        masks: Per order, the gradient entries to show (output rows the loss reads).
        slices: ``(layer name, start, stop)`` of each layer in the flat gradient.
        path: The PNG file to write.
    """
    plt = _plt()
    n = len(slices)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2), squeeze=False)
    for ax, (lname, a, b), li in zip(axes[0], slices, range(n), strict=True):
        for order in _orders(result):
            g = grads[order][a:b][masks[order][a:b]].double().cpu().numpy()
            sd = g.std()
            z = g / sd if sd > 0 else g
            st = result["orders"][str(order)]["layers"][li]
            ax.hist(
                z,
                bins=60,
                range=(-8, 8),
                density=True,
                histtype="step",
                color=_COLORS[order],
                label=f"{order}: kurt {st['excess_kurtosis']:.1f}, "
                f"cos {st['cosine_two_draws']:.2f}",
            )
        ax.set_yscale("log")
        ax.set_title(lname, fontsize=9)
        ax.set_xlabel("gradient entry / layer std")
        ax.legend(fontsize=6, title="order", title_fontsize=6, loc="upper right")
    fig.suptitle(
        f"{result['problem']}: per-layer gradient entries at {result['at']} "
        "(excess kurtosis; cosine between two point draws)",
        fontsize=10,
    )
    fig.tight_layout()
    try:
        write_atomically(path, lambda fh: fig.savefig(fh, dpi=100, format="png"))
    finally:
        plt.close(fig)


def plot_landscapes(panels: list[dict[str, Any]], path: str) -> None:
    """Writes landscape.png: surface and contour plot of log10 L per run, side by side.

    Args:
        panels: fluxkern.diagnostics.loss_landscape results (the run, then the compared run).
        path: The PNG file to write.
    """
    plt = _plt()
    n = len(panels)
    fig = plt.figure(figsize=(5.0 * n, 8.4))
    for k, res in enumerate(panels):
        a = np.asarray(res["alpha"])
        b = np.asarray(res["beta"])
        aa, bb = np.meshgrid(a, b, indexing="ij")
        vals = np.asarray(res["loss"], dtype=float)
        z = np.log10(vals + res["log_shift"])
        label = "log10 L" if not res["log_shift"] else f"log10(L + {res['log_shift']:.3g})"
        title = f"{res['problem']} / {res['formulation']}"
        ax = fig.add_subplot(2, n, k + 1, projection="3d")
        ax.plot_surface(aa, bb, z, cmap="viridis", linewidth=0, antialiased=False)
        ax.set_xlabel("alpha")
        ax.set_ylabel("beta")
        ax.set_zlabel(label)
        ax.set_title(f"{title}\nL(0) = {res['origin_loss']:.3g}", fontsize=10)
        ax2 = fig.add_subplot(2, n, n + k + 1)
        cs = ax2.contourf(aa, bb, z, levels=30, cmap="viridis")
        ax2.contour(aa, bb, z, levels=15, colors="k", linewidths=0.3)
        ax2.plot([0], [0], "r+", ms=10)
        fig.colorbar(cs, ax=ax2, label=label)
        ax2.set_xlabel("alpha")
        ax2.set_ylabel("beta")
        ax2.set_aspect("equal")
        ax2.set_title(
            f"{title}: {res['local_minima']} local minima, roughness {res['roughness']:.2g}",
            fontsize=9,
        )
    fig.suptitle("loss landscape (filter-normalised random directions, multipliers frozen)")
    fig.tight_layout()
    try:
        write_atomically(path, lambda fh: fig.savefig(fh, dpi=100, format="png"))
    finally:
        plt.close(fig)
