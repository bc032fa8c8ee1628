"""Markdown tables and PNG plots of a side-by-side run (bench/run.py's payload)."""

from __future__ import annotations

import math
from typing import Any

import common

__all__ = ["problems_tables", "tables", "write"]

STEP_COLUMNS = ["contender", "form", "ms", "x fluxkern", "GFLOP/s", "of GEMM peak", "error"]


def _fmt_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        r = dict(r)
        if r.get("ms") is None:
            r["ms"] = "-"
        if r.get("x fluxkern") is not None:
            r["x fluxkern"] = f"{r['x fluxkern']:.2f}x"
        out.append(r)
    return out


def _header(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads"
        + (f", GPU {m['gpu']} (CUDA {m.get('cuda')})" if m.get("gpu") else "")
        + f"; Python {m['python']}, torch {m['torch']}, fluxkern {m['fluxkern']}, "
        f"DeepXDE {m.get('deepxde') or 'not installed'}; {m['date']}. Measured float32 GEMM "
        f"rate {m['gemm_peak_gflops_float32']} GFLOP/s (2048^2 matmul through torch)."
    ) + _source(m)


def _source(m: dict[str, Any]) -> str:
    """Where fluxkern came from (run.py's fluxkern_source), or "" when not recorded."""
    src = m.get("fluxkern_source")
    if not src:
        return ""
    text = f" fluxkern from {src['path']} at commit {src.get('commit')}"
    mod = src.get("modified") or []
    if mod:
        shown = ", ".join(mod[:6]) + (", ..." if len(mod) > 6 else "")
        text += f", with uncommitted changes to {len(mod)} files ({shown})"
    return text + "."


def _scaling_table(rows: list[dict[str, Any]]) -> str:
    """ms per step: one line per (width, contender), one column per N."""
    ns = sorted({r["N"] for r in rows})
    keys: list[tuple[int, str]] = []
    for r in rows:
        key = (r["width"], r["contender"] + (" (PINN)" if r.get("form") == "PINN" else ""))
        if key not in keys:
            keys.append(key)
    table = []
    for w, name in keys:
        line: dict[str, Any] = {"width": w, "contender": name}
        for r in rows:
            label = r["contender"] + (" (PINN)" if r.get("form") == "PINN" else "")
            if r["width"] == w and label == name:
                line[f"N={r['N']}"] = f"{r['ms']:.1f}" if r.get("ms") else "-"
        table.append(line)
    return common.print_table(table, ["width", "contender"] + [f"N={n}" for n in ns])


def _tta_table(traces: list[dict[str, Any]]) -> str:
    rows = []
    for t in traces:
        reached = f"{t['reached_s']:.1f}" if t["reached_s"] is not None else "not reached"
        best = t["best_error"]
        rows.append(
            {
                "problem": t["problem"],
                "target": f"{t['target']:g}",
                "contender": t["contender"],
                "time to target (s)": reached,
                "best rel. L2 u": "-" if best is None or math.isnan(best) else f"{best:.2e}",
                "run for (s)": f"{t['times_s'][-1]:.0f}" if t["times_s"] else "-",
                "steps": t["steps"],
                "how": t.get("error") or t["note"],
            }
        )
    cols = ["problem", "target", "contender", "time to target (s)", "best rel. L2 u"]
    return common.print_table(rows, cols + ["run for (s)", "steps", "how"])


PROBLEM_FLOPS_NOTE = (
    "GFLOP/s: the flux-form forward-mode FLOP count of DESIGN.md section 5, "
    "F = 4 d W + 6 (1+d) ((L-1) W^2 + m W) per point, times the rows evaluated (every distinct "
    "point set once, paired points twice), over the fused eval time; the same count for every "
    "contender, so it is the fused op's work, not what plain PyTorch computes. 'GEMM at shape': "
    "torch.mm [(1+d) rows, W] x [W, W] in the same dtype and thread count; 'peak': a 2048^2 "
    "torch.mm. eval = zero grads, loss, backward; epoch = one L-BFGS step(closure) (lr 1, "
    "max_iter 20, history 100, strong Wolfe; fluxkern: fluxkern.optim.LBFGS, plain: "
    "torch.optim.LBFGS; every epoch from the same start: weights, multipliers and L-BFGS state "
    "with its full pair history after the warm epochs) plus one dual update. "
    "max rel. diff: the largest relative difference of the twin or plain PyTorch from fused "
    "(loss, parameter gradient, multipliers after one dual update) at the start state, checked "
    "before timing (float64: <= 1e-10; float32: <= 1e-4 at the initial weights, 'at initial "
    "weights', and reported at the start state, where float32 gradients of some problems are "
    "ill-conditioned for every contender alike)."
)


def _by(rows: list[dict[str, Any]], key: str) -> list[Any]:
    return list(dict.fromkeys(r[key] for r in rows))


def problems_tables(rows: list[dict[str, Any]]) -> str:
    """One table per (dtype, threads): problems as rows; eval and epoch of fused, twin, plain.

    Args:
        rows: The problems workload's rows (bench/run.py problem_rows).

    Returns:
        The markdown text.
    """
    parts = [PROBLEM_FLOPS_NOTE]
    for dtype in _by(rows, "dtype"):
        for threads in _by([r for r in rows if r["dtype"] == dtype], "threads"):
            sel = [r for r in rows if r["dtype"] == dtype and r["threads"] == threads]
            fused0 = next(r for r in sel if r["kind"] == "fused")
            where = (
                f"on {fused0['device']}"
                if fused0.get("device")
                else f"{threads} thread{'s' if threads > 1 else ''}"
            )
            parts.append(
                f"\n#### problems: {dtype}, {where} "
                f"(large-GEMM peak {fused0['gemm_peak_gflops']:.1f} GFLOP/s)\n"
            )
            table = []
            for prob in _by(sel, "problem"):
                pr = {r["kind"]: r for r in sel if r["problem"] == prob}
                f, t, p = pr.get("fused"), pr.get("twin"), pr.get("plain")
                if f is None:
                    continue
                # largest relative difference of any contender from fused
                worst = max(v for r in pr.values() for v in r.get("check", {}).values())
                first = [
                    v for r in pr.values() for v in r.get("check_initial_weights", {}).values()
                ]
                line: dict[str, Any] = {
                    "problem": prob,
                    "net": f"{f['d']}-{f['width']}x{f['depth']}-{f['m']}",
                    "rows": f["N_rows"],
                }
                for what in ("eval", "epoch"):
                    for kind, r in (("fused", f), ("twin", t), ("plain", p)):
                        line[f"{kind} {what} ms"] = (
                            f"{r[what + '_ms']:.2f}" if r and what == "eval" else
                            f"{r[what + '_ms']:.1f}" if r else "-"
                        )  # fmt: skip
                    line[f"plain/fused {what}"] = f"{p['x fused ' + what]:.2f}x" if p else "-"
                line["evals/epoch f/t/p"] = "/".join(
                    str(r["evals_per_epoch"]) if r else "-" for r in (f, t, p)
                )
                line["fused GFLOP/s"] = f"{f['GFLOP/s']:.1f}"
                line["GEMM at shape"] = f"{f['gemm_same_shape_gflops']:.1f}"
                line["of peak"] = f.get("of GEMM peak", "")
                line["max rel. diff"] = f"{worst:.0e}"
                if first:
                    line["at initial weights"] = f"{max(first):.0e}"
                table.append(line)
            cols = list(dict.fromkeys(k for line in table for k in line))
            parts.append(common.print_table(table, cols))
    hand = [r for r in rows if r["kind"] == "plain (by hand)"]
    if hand:
        parts.append("\n#### plain PyTorch: generic (from the blocks) against written by hand\n")
        table = []
        for h in hand:
            g = next(
                r
                for r in rows
                if r["kind"] == "plain"
                and all(r[k] == h[k] for k in ("problem", "dtype", "threads"))
            )
            table.append(
                {
                    "problem": h["problem"],
                    "dtype": h["dtype"],
                    "threads": h["threads"],
                    "generic eval ms": f"{g['eval_ms']:.2f}",
                    "by hand eval ms": f"{h['eval_ms']:.2f}",
                    "by hand/generic eval": f"{h['eval_ms'] / g['eval_ms']:.2f}",
                    "generic epoch ms": f"{g['epoch_ms']:.1f}",
                    "by hand epoch ms": f"{h['epoch_ms']:.1f}",
                    "by hand/generic epoch": f"{h['epoch_ms'] / g['epoch_ms']:.2f}",
                    "evals/epoch g/h": f"{g['evals_per_epoch']}/{h['evals_per_epoch']}",
                }
            )
        parts.append(common.print_table(table, list(table[0])))
    return "\n".join(parts)


def tables(payload: dict[str, Any]) -> str:
    """The markdown text of every workload in the payload."""
    parts = [_header(payload)]
    wls = payload["workloads"]
    for name in ("jet", "step"):
        if name in wls:
            rows = wls[name]["results"]
            r0 = rows[0]
            parts.append(
                f"\n### {name}: N {r0['N']}, width {r0['width']}, 4 hidden layers, float32\n"
            )
            cols = [c for c in STEP_COLUMNS if any(c in r for r in rows)]
            if name == "jet":
                cols = [c for c in cols if c != "form"]
            parts.append(common.print_table(_fmt_rows(rows), cols))
    if "scaling" in wls:
        parts.append("\n### scaling: ms per training step (float32, 4 hidden layers)\n")
        parts.append(_scaling_table(wls["scaling"]["results"]))
        skipped = {r["error"] for r in wls["scaling"]["results"] if r.get("error")}
        parts.append("\nNot measured: " + "; ".join(sorted(skipped)) if skipped else "")
    if "tta" in wls:
        parts.append("\n### time to accuracy (checks excluded from the times)\n")
        parts.append(_tta_table(wls["tta"]["results"]))
    if wls.get("dropin", {}).get("results"):
        import bench_dropin

        parts.append(
            "\n### dropin: fluxkern.jet + a user loss (sum y^2 + sum J^2, backward), "
            "interleaved medians\n"
        )
        parts.append(bench_dropin.summary(wls["dropin"]["results"]))
    if wls.get("problems", {}).get("results"):
        parts.append("\n### problems: the benchmark problems at their own sizes (flux form)\n")
        parts.append(problems_tables(wls["problems"]["results"]))
    return "\n".join(parts) + "\n"


def _plots(payload: dict[str, Any], stem: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    wls = payload["workloads"]
    if "step" in wls:
        rows = [r for r in wls["step"]["results"] if r.get("ms")]
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.2))
        labels = [f"{r['contender']} [{r['form']}]" for r in rows]
        colours = [
            "tab:green" if r["contender"].startswith("fluxkern") else "tab:grey" for r in rows
        ]
        bars = ax.barh(labels, [r["ms"] for r in rows], color=colours)
        ax.bar_label(bars, labels=[f"{r['ms']:.1f}" for r in rows], padding=3, fontsize=8)
        ax.set_xlim(0, 1.15 * max(r["ms"] for r in rows))  # linear from 0: lengths compare
        ax.invert_yaxis()
        ax.set_xlabel("ms per training step")
        r0 = rows[0]
        ax.set_title(f"poisson, one training step, N {r0['N']}, width {r0['width']}, float32")
        fig.tight_layout()
        fig.savefig(stem + "-steps.png", dpi=110)
        plt.close(fig)
        written.append(stem + "-steps.png")
    if "scaling" in wls:
        rows = [r for r in wls["scaling"]["results"] if r.get("ms")]
        widths = sorted({r["width"] for r in rows})
        if widths:
            fig, axes = plt.subplots(1, len(widths), figsize=(4 * len(widths), 3.6), squeeze=False)
            for ax, w in zip(axes[0], widths, strict=True):
                names = []
                for r in rows:
                    if r["width"] == w and r["contender"] + r["form"] not in names:
                        names.append(r["contender"] + r["form"])
                for key in names:
                    pts = [(r["N"], r["ms"]) for r in rows if r["width"] == w and
                           r["contender"] + r["form"] == key]  # fmt: skip
                    r0 = next(r for r in rows if r["contender"] + r["form"] == key)
                    ax.loglog(
                        *zip(*pts, strict=True), "o-", label=f"{r0['contender']} [{r0['form']}]"
                    )
                ax.set_title(f"width {w}")
                ax.set_xlabel("N")
                ax.set_ylabel("ms per step")
            axes[0][0].legend(fontsize=7)
            fig.tight_layout()
            fig.savefig(stem + "-scaling.png", dpi=110)
            plt.close(fig)
            written.append(stem + "-scaling.png")
    if "tta" in wls:
        traces = wls["tta"]["results"]
        probs = list(dict.fromkeys(t["problem"] for t in traces))
        fig, axes = plt.subplots(1, len(probs), figsize=(6 * len(probs), 4), squeeze=False)
        for ax, prob in zip(axes[0], probs, strict=True):
            for t in traces:
                if t["problem"] == prob and t["times_s"]:
                    ax.loglog(t["times_s"], t["errors"], label=t["contender"])
            target = next(t["target"] for t in traces if t["problem"] == prob)
            ax.axhline(target, color="k", ls="--", lw=0.8)
            ax.set_title(f"{prob}: rel. L2 of u (target {target:g})")
            ax.set_xlabel("seconds")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(stem + "-tta.png", dpi=110)
        plt.close(fig)
        written.append(stem + "-tta.png")
    return written


def write(payload: dict[str, Any], stem: str) -> str:
    """Writes stem.md and the PNG plots; returns the markdown text."""
    text = tables(payload)
    with open(stem + ".md", "w") as fh:
        fh.write(text)
    _plots(payload, stem)
    return text
