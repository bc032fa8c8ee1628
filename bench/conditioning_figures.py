"""The conditioning check's figures (docs/guide/trust.md's table) on trained networks: the
committed results' models (results/NAME/flux/model.pt) and the runs given (`--run PROBLEM DIR`:
the problem as `fluxkern solve` takes it and the run's --out folder, whose model.pt the check
reloads, with the run's points and problem options).

Per output: the resolution ratio, and where it is over the limit, the width of the layer at the
worst place and the training points across it (the layer rule); per run the magnitude ratio and
the verdict. One torch thread; the figures do not depend on the machine.

    python bench/conditioning_figures.py [--committed] [--run PROBLEM DIR ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import torch

import fluxkern as fk
from fluxkern.options import option_names
from fluxkern.problems import resolve
from fluxkern.problems.configure import configure
from fluxkern.solver import build_model
from fluxkern.training.conditioning import check_trained_conditioning

COMMITTED = (
    "stokes",
    "composite_heat",
    "helmholtz",
    "convection",
    "cavity",
    "convection_diffusion",
)


def figures(problem: Any, state: dict[str, Any]) -> dict[str, Any]:
    """The check on a saved run (model.pt's state) of `problem`, as results.json writes it."""
    opts = state["options"]
    model = build_model(problem, "flux", torch.float64, torch.device("cpu"))
    model.load_state_dict(state["model"])
    report = check_trained_conditioning(problem, model, int(opts.get("seed", 0)))
    return report.to_dict()


def _row(name: str, fig: dict[str, Any]) -> str:
    outs = []
    for out, o in fig["outputs"].items():
        r = o["resolution"]
        cell = f"{out} {r:.3g}" if r is not None else f"{out} -"
        if o["layer_width"] is not None:
            w, n, k = o["layer_width"], o["layer_points"], o["layer_bins"]
            cell += f" (layer {w:.2g} wide: {n} points, {k} of {o['layer_bins_inside']} slices)"
        outs.append(cell)
    mag = fig["magnitude_ratio"]
    verdict = "flagged: " + ", ".join(fig["under_resolved"]) if fig["flagged"] else "quiet"
    return (
        f"| {name} | {'; '.join(outs)} | {mag:.3g} | {verdict} |"
        if mag
        else f"| {name} | {'; '.join(outs)} | - | {verdict} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--committed", action="store_true", help="the committed results' models")
    ap.add_argument(
        "--run", nargs=2, action="append", default=[], metavar=("PROBLEM", "DIR"), help="a run"
    )
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows: dict[str, Any] = {}
    jobs: list[tuple[str, Any, str]] = []
    if a.committed:
        jobs += [(n, resolve(n), f"results/{n}/flux/model.pt") for n in COMMITTED]
    jobs += [(spec, resolve(spec), os.path.join(run, "model.pt")) for spec, run in a.run]
    print(f"torch {torch.__version__}, fluxkern {fk.__version__}")
    print("| run | resolution per output | magnitudes | verdict |\n|---|---|---|---|")
    for name, problem, path in jobs:
        state = torch.load(path, weights_only=True, map_location="cpu")
        fig = figures(_configured(problem, state), state)
        rows[name] = fig
        print(_row(name, fig), flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


def _configured(problem: Any, state: dict[str, Any]) -> Any:
    """The problem as a saved run had it: with its points and problem options."""
    opts = state["options"]
    points, popts = opts.get("points") or {}, opts.get("problem_options") or {}
    return configure(problem, points, popts, option_names())


if __name__ == "__main__":
    sys.exit(main())
