"""Fidelity at equal epochs: fluxkern.solve against the same method in plain PyTorch (issue 11).

For one benchmark problem and several seeds this script runs

- **fluxkern**: ``fluxkern.solve(problem, epochs=E, seed=s, callback=cb)``, the library's own
  solver (fused loss, ``fluxkern.optim.LBFGS``, the problem's dual rule), and
- **plain**: the ``PlainTorch`` contender of problem_steps.py on the same problem and seed: the
  flux-form loss in plain PyTorch autograd on a copy of the same initial network and the same
  points and multipliers, one ``torch.optim.LBFGS`` (lr 1, max_iter 20, history 100, strong
  Wolfe) kept for the whole run, one ``step(closure)`` then one dual update (the same rule) per
  epoch, which is what ``fluxkern.solve`` does per epoch (``fluxkern.training.Trainer.step``),

and records every ``--every`` epochs the problem's errors on its evaluation grid
(``problem.eval_grid``, ``fluxkern.solver.predict``, ``problem.errors``) for both. Where the
method's reference code reported the matrix 2-norm (PROBLEMS.md: convection and stokes, numpy
``norm(E, 2)`` on the 2-D grid) that error is reported too, next to the ordinary relative L2;
for cavity the largest deviations of u(0.5, y) and v(x, 0.5) from Ghia et al. at their points
(the problem's ``extra_results``).

Before training, every seed is checked: ``fluxkern.solve(..., epochs=0)`` is run with its
AugmentedLagrangian recorded, and its initial weights must be bit-identical to those of the
plain contender's case and its initial loss equal to the plain loss within 1e-12 (relative,
float64). Both trajectories start with the errors at the initial weights (epoch 0).

Outputs under ``--out`` (default bench/results/fidelity):

- ``parts/<problem>/<implementation>-seed<s>.json``: one run, rewritten after every checkpoint
  (a killed run keeps its data),
- ``<problem>.json``: all parts merged (machine, versions, options, per seed and implementation
  the trajectory of (epoch, wall seconds, closure evaluations, loss, errors)),
- ``<problem>.md``: per checkpoint epoch and error, mean and min-max over seeds for each
  implementation and whether the two ranges overlap ("within seed spread"); wall times,
- ``<problem>.png``: errors against epochs, log scale, one line per seed and implementation.

Every process merges all parts of its problem after each checkpoint (under a file lock), so two
processes can run the implementations side by side (``--which fluxkern`` and ``--which plain``,
one core each) and the summary covers both; ``--merge`` only merges.

Usage (from the repository root)::

    python bench/fidelity.py PROBLEM [PROBLEM ...] [--seeds 0 1 2] [--epochs 1000] [--every 50]
                             [--threads 1] [--out bench/results/fidelity]
                             [--which fluxkern|plain|both] [--dtype float64|float32]
                             [--skip-complete]
    python bench/fidelity.py PROBLEM --merge [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import common
import fluxkern as fk
import problem_steps as ps
import run as bench_run
from fluxkern import solver
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.problems.base import EvalGrid, Problem

__all__ = [
    "Evaluator",
    "FidelityCheckFailed",
    "initial_check",
    "main",
    "make_case",
    "merge",
    "run_fluxkern",
    "run_plain",
    "summary_markdown",
]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "bench", "results", "fidelity")
IMPLEMENTATIONS = ("fluxkern", "plain")
# PROBLEMS.md, "Reference errors, measured again": the reference computed these problems' errors
# with numpy's norm(E, 2) on the 2-D grid array, the matrix 2-norm (largest singular value).
MATRIX_NORM_PROBLEMS = frozenset({"convection", "stokes"})
MATRIX_SUFFIX = " (matrix 2-norm)"
# solve's initial loss against the plain contender's, relative.
INITIAL_LOSS_TOL = {torch.float64: 1e-12, torch.float32: 1e-5}
# Two min-max ranges "overlap" when they do up to this relative slack (round-off: with one seed
# a range is a single value, and two equal runs differ in the last bits).
OVERLAP_SLACK = 1e-9
PLOT_INTERVAL_S = 120.0  # redraw the PNG at most this often while running (always at the end)
COLOURS = {"fluxkern": "tab:blue", "plain": "tab:orange"}
STYLES = {"fluxkern": "-o", "plain": "--s"}  # plain dashed: equal runs stay visible
LABELS = {
    "fluxkern": "fluxkern.solve (fused loss, fluxkern.optim.LBFGS)",
    "plain": "plain PyTorch (autograd.grad, torch.optim.LBFGS)",
}


class FidelityCheckFailed(SystemExit):
    """fluxkern.solve and the plain contender do not start from the same state."""


# --------------------------------------------------------------------------- the case
def make_case(name: str, seed: int, dtype: torch.dtype, device: str = "cpu") -> ps.ProblemCase:
    """The problem as ``fluxkern.solve(name, seed=seed, dtype=dtype)`` builds it.

    problem_steps.make_case with the seed chosen: torch.manual_seed(seed), the network of
    solver.build_model, then problem.flux_terms(seed, ...), in solver.make_trainer's order.

    Args:
        name: A registered problem.
        seed: The seed of the network initialisation and of the points.
        dtype: Parameter and point dtype.
        device: Torch device.

    Returns:
        The case (network at its initial weights, blocks with their points, solver options).
    """
    problem = fk.problems.get(name)
    dtype_name = str(dtype).replace("torch.", "")
    options = solver.make_options(problem, {"dtype": dtype_name, "seed": seed})
    dev = torch.device(device)
    torch.manual_seed(options.seed)
    model = solver.build_model(problem, "flux", dtype, dev)
    terms = problem.flux_terms(options.seed, dtype, dev)
    sets: list[Tensor] = []
    for t in terms:
        pts = t.points
        same = (s.shape == pts.shape and bool(torch.equal(s, pts)) for s in sets)
        if not any(same):
            sets.append(pts)
    return ps.ProblemCase(problem, options, dtype, model, terms, sets)


# --------------------------------------------------------------------------- errors
def matrix_relative_error(pred: Tensor, exact: Tensor, shape: tuple[int, ...]) -> float:
    """numpy.linalg.norm(E, 2) / numpy.linalg.norm(Exact, 2) on the grid array (2-D).

    Args:
        pred: Predicted field on the grid, [G].
        exact: Exact field, [G].
        shape: The grid's shape (two entries, prod = G).

    Returns:
        The ratio of the largest singular values, as the reference's notebooks computed it.
    """
    p = pred.detach().double().cpu().numpy().reshape(shape)
    e = exact.detach().double().cpu().numpy().reshape(shape)
    return float(np.linalg.norm(p - e, 2) / np.linalg.norm(e, 2))


def centreline_deviations(extra: dict[str, Any]) -> dict[str, float]:
    """Largest centreline deviations from a problem's extra_results (cavity), else {}."""
    out: dict[str, float] = {}
    val = extra.get("validation")
    if isinstance(val, dict):
        for key, entry in val.items():
            if key.endswith("_centreline") and isinstance(entry, dict):
                if "max_abs_deviation" in entry:
                    field = key[: -len("_centreline")]
                    out[f"{field} centreline max dev"] = float(entry["max_abs_deviation"])
    return out


class Evaluator:
    """The problem's errors for a network, on its evaluation grid (as fluxkern.solve computes
    them at the end of a run), plus the reference's matrix 2-norm or centreline deviations.

    Args:
        problem: The problem instance (cavity remembers the grid's dtype in eval_grid).
        dtype: Grid dtype.
        device: Torch device.
    """

    def __init__(self, problem: Problem, dtype: torch.dtype, device: str = "cpu") -> None:
        self.problem = problem
        self.grid: EvalGrid = problem.eval_grid(dtype, torch.device(device))
        self.exact = problem.exact(self.grid.points)
        self.matrix = problem.name in MATRIX_NORM_PROBLEMS and len(self.grid.shape) == 2

    def __call__(self, model: nn.Module) -> dict[str, float]:
        """Errors by name: each error field's relative L2 (and its matrix 2-norm version where
        the reference used it); cavity: "u centreline max dev", "v centreline max dev"."""
        p = self.problem
        fields = solver.predict(p, model, "flux", self.grid.points)
        errors: dict[str, float] = {}
        for k, v in p.errors(fields, self.grid).items():
            errors[k] = v
            if self.matrix:  # next to the ordinary relative L2
                errors[k + MATRIX_SUFFIX] = matrix_relative_error(
                    fields[k], self.exact[k], self.grid.shape
                )
        extra = p.extra_results(lambda x: solver.predict(p, model, "flux", x))
        errors.update(centreline_deviations(extra))
        return errors


# --------------------------------------------------------------------------- solve's AL
@contextlib.contextmanager
def recording_solver(
    on_init: Callable[[AugmentedLagrangian], None] | None = None,
) -> Iterator[list[AugmentedLagrangian]]:
    """Records the AugmentedLagrangian that fluxkern.solve builds (and counts its calls).

    Within the context, solver.AugmentedLagrangian is a subclass that appends each instance to
    the yielded list, calls on_init(al) right after construction (the model is then at its
    initial weights; solve has not started its clock) and counts loss evaluations in
    ``al.calls`` (reset after on_init).
    """
    base = getattr(solver, "AugmentedLagrangian", None)
    if base is None:
        raise RuntimeError(
            "fluxkern.solver no longer imports AugmentedLagrangian by that name; update "
            "bench/fidelity.py (recording_solver) to record the solver's loss object"
        )
    made: list[AugmentedLagrangian] = []

    class Recording(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.calls = 0
            made.append(self)
            if on_init is not None:
                on_init(self)
            self.calls = 0

        def __call__(self) -> Tensor:
            self.calls += 1
            return super().__call__()

    solver.AugmentedLagrangian = Recording
    try:
        yield made
    finally:
        solver.AugmentedLagrangian = base


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    pa, pb = list(a.parameters()), list(b.parameters())
    return len(pa) == len(pb) and all(
        x.shape == y.shape and bool(torch.equal(x.detach(), y.detach()))
        for x, y in zip(pa, pb, strict=True)
    )


def initial_check(
    problem: Problem, case: ps.ProblemCase, plain: ps.PlainTorch, seed: int
) -> dict[str, Any]:
    """fluxkern.solve's initial state against the plain contender's (weights, points, loss).

    Runs fluxkern.solve(problem, epochs=0, seed=seed) with its AugmentedLagrangian recorded and
    compares its initial weights with the case's (bit for bit) and its initial loss with the
    plain contender's loss (same points and multipliers, so this also checks the points).

    Returns:
        {"solve_loss", "plain_loss", "rel_diff", "tolerance", "weights_identical", "backend"}.

    Raises:
        FidelityCheckFailed: The weights differ or the losses differ beyond INITIAL_LOSS_TOL.
    """
    snap: dict[str, Any] = {}

    def on_init(al: AugmentedLagrangian) -> None:
        snap["weights_identical"] = _same_weights(al.model, case.model)
        with torch.no_grad():
            snap["solve_loss"] = float(al())
        snap["backend"] = al.backend

    with recording_solver(on_init):
        fk.solve(
            problem,
            epochs=0,
            seed=seed,
            dtype=case.options.dtype,
            out=None,
            progress=False,
            plots=False,
        )
    if "solve_loss" not in snap:
        raise FidelityCheckFailed(f"{problem.name}: fluxkern.solve built no AugmentedLagrangian")
    plain_loss = float(plain.loss().detach())
    solve_loss = snap["solve_loss"]
    rel = abs(solve_loss - plain_loss) / max(abs(solve_loss), 1e-300)
    tol = INITIAL_LOSS_TOL[case.dtype]
    result = {
        "solve_loss": solve_loss,
        "plain_loss": plain_loss,
        "rel_diff": rel,
        "tolerance": tol,
        "weights_identical": snap["weights_identical"],
        "backend": snap["backend"],
    }
    print(
        f"[{problem.name} seed {seed}] initial loss: fluxkern.solve {solve_loss!r}, plain "
        f"{plain_loss!r}, rel. diff {rel:.1e} (tolerance {tol:g}); initial weights "
        f"{'bit-identical' if snap['weights_identical'] else 'DIFFERENT'}",
        flush=True,
    )
    if not snap["weights_identical"]:
        raise FidelityCheckFailed(
            f"{problem.name} seed {seed}: fluxkern.solve's initial weights differ from the plain "
            "contender's case (problem_steps.ProblemCase built as solve builds it)"
        )
    if not rel <= tol:
        raise FidelityCheckFailed(
            f"{problem.name} seed {seed}: initial loss of fluxkern.solve {solve_loss!r} and of "
            f"plain PyTorch {plain_loss!r} differ by {rel:.2e} (relative), beyond {tol:g}: "
            "they do not start from the same weights, points and multipliers"
        )
    return result


# --------------------------------------------------------------------------- output files
def _atomic_json(path: str, payload: Any) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(payload, fh, indent=1)
    os.replace(tmp, path)


def _atomic_text(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def part_path(out: str, problem: str, implementation: str, seed: int) -> str:
    """Where one run (implementation, seed) of a problem keeps its trajectory."""
    return os.path.join(out, "parts", problem, f"{implementation}-seed{seed}.json")


class Part:
    """One run's record, written to its part file after every checkpoint.

    Args:
        out: The output folder.
        problem: Problem name.
        implementation: "fluxkern" or "plain".
        seed: The seed.
        options: The run's options (epochs, every, dtype, threads).
        check: initial_check's result for this seed.
    """

    def __init__(
        self,
        out: str,
        problem: str,
        implementation: str,
        seed: int,
        options: dict[str, Any],
        check: dict[str, Any],
    ) -> None:
        self.out, self.problem = out, problem
        self.path = part_path(out, problem, implementation, seed)
        self.t_created = time.perf_counter()
        self.last_plot = -math.inf
        self.data: dict[str, Any] = {
            "problem": problem,
            "implementation": implementation,
            "seed": seed,
            "options": options,
            "initial_check": check,
            "machine": common.machine_info(),
            "fluxkern_source": bench_run.fluxkern_source(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "loadavg_start": list(os.getloadavg()),
            "trajectory": [],
            "complete": False,
            "stopped": None,
        }

    def add(self, entry: dict[str, Any]) -> None:
        """Appends a checkpoint and saves (part file, then the merged summary)."""
        self.data["trajectory"].append(entry)
        self.save(final=False)

    def save(self, final: bool) -> None:
        """Writes the part file and merges all parts of the problem (PNG at most every
        PLOT_INTERVAL_S seconds unless final)."""
        self.data["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
        self.data["loadavg_now"] = list(os.getloadavg())
        _atomic_json(self.path, self.data)
        now = time.perf_counter()
        plot = final or now - self.last_plot >= PLOT_INTERVAL_S
        if plot:
            self.last_plot = now
        merge(self.out, self.problem, plot=plot)

    def finish(self, stopped: str | None) -> None:
        """Marks the run complete (or stopped, with the reason) and saves."""
        self.data["complete"] = stopped is None
        self.data["stopped"] = stopped
        self.data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        self.save(final=True)


def _fmt_errors(errors: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.3e}" for k, v in errors.items())


def _progress(tag: str, epoch: int, epochs: int, entry: dict[str, Any], elapsed: float) -> None:
    per = f" ({entry['wall_s'] / epoch:.3f} s/epoch)" if epoch else ""
    loss = entry.get("loss")
    loss_text = f"  loss {loss:.3e}" if loss is not None else ""
    print(
        f"{tag} epoch {epoch}/{epochs}  {_fmt_errors(entry['errors'])}{loss_text}  "
        f"training {entry['wall_s']:.1f} s{per}, {entry['evals']} evals  "
        f"elapsed {elapsed:.1f} s",
        flush=True,
    )


def _is_checkpoint(epoch: int, every: int, epochs: int) -> bool:
    return epoch % every == 0 or epoch == epochs


# --------------------------------------------------------------------------- the two runs
def run_fluxkern(
    problem: Problem,
    case: ps.ProblemCase,
    evaluator: Evaluator,
    part: Part,
    epochs: int,
    every: int,
) -> None:
    """fluxkern.solve(problem, epochs, seed) with errors recorded every `every` epochs.

    Wall seconds are training time: the time since solve's loss object was built, less the
    time spent in this callback's evaluations and saves.
    """
    seed = part.data["seed"]
    tag = f"[{problem.name} fluxkern seed {seed}]"
    clock: dict[str, float] = {"start": 0.0, "excluded": 0.0}
    recorded: list[AugmentedLagrangian] = []

    def on_init(al: AugmentedLagrangian) -> None:
        if not _same_weights(al.model, case.model):
            raise FidelityCheckFailed(f"{tag} solve's initial weights differ from the case's")
        with torch.no_grad():
            loss = float(al())
        entry = {"epoch": 0, "wall_s": 0.0, "evals": 0, "loss": loss, "errors": evaluator(al.model)}
        part.data["backend"] = al.backend
        part.add(entry)
        _progress(tag, 0, epochs, entry, time.perf_counter() - part.t_created)
        clock["start"] = time.perf_counter()

    def callback(epoch: int, model: nn.Module) -> bool:
        if not _is_checkpoint(epoch, every, epochs):
            return False
        t0 = time.perf_counter()
        al = recorded[-1]
        entry = {
            "epoch": epoch,
            "wall_s": t0 - clock["start"] - clock["excluded"],
            "elapsed_s": t0 - part.t_created,
            "evals": al.calls,
            "loss": al.last_loss,
            "errors": evaluator(model),
        }
        part.add(entry)
        _progress(tag, epoch, epochs, entry, time.perf_counter() - part.t_created)
        clock["excluded"] += time.perf_counter() - t0
        return False

    stopped: str | None = None
    with recording_solver(on_init) as made:
        recorded = made
        try:
            fk.solve(
                problem,
                epochs=epochs,
                seed=seed,
                dtype=case.options.dtype,
                callback=callback,
                out=None,
                progress=False,
                plots=False,
            )
        except solver.NonFiniteLossError as e:
            stopped = f"non-finite loss: {e}"
            print(f"{tag} stopped: {stopped}", flush=True)
    part.finish(stopped)


def _plain_epoch(c: ps.PlainTorch, opt: torch.optim.Optimizer) -> tuple[int, float]:
    """problem_steps.run_epoch (one L-BFGS step(closure), then the dual update), also returning
    the last closure loss (what fluxkern.solve's AugmentedLagrangian.last_loss holds)."""
    count, last = 0, math.nan

    def closure() -> Tensor:
        nonlocal count, last
        count += 1
        opt.zero_grad(set_to_none=True)
        loss = c.loss()
        loss.backward()
        last = loss.detach()
        return loss

    opt.step(closure)
    c.update_multipliers()
    return count, float(last)


def run_plain(
    problem: Problem,
    case: ps.ProblemCase,
    plain: ps.PlainTorch,
    evaluator: Evaluator,
    part: Part,
    epochs: int,
    every: int,
) -> None:
    """The PlainTorch contender with torch.optim.LBFGS, errors every `every` epochs.

    Wall seconds are the summed time of the epochs (evaluations and saves excluded).
    """
    seed = part.data["seed"]
    tag = f"[{problem.name} plain seed {seed}]"
    loss0 = float(plain.loss().detach())
    entry = {"epoch": 0, "wall_s": 0.0, "evals": 0, "loss": loss0, "errors": evaluator(plain.net)}
    part.add(entry)
    _progress(tag, 0, epochs, entry, time.perf_counter() - part.t_created)
    opt = case.lbfgs(plain.params, torch.optim.LBFGS)
    train, evals = 0.0, 0
    stopped: str | None = None
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        n, last = _plain_epoch(plain, opt)
        train += time.perf_counter() - t0
        evals += n
        finite = math.isfinite(last) and all(bool(torch.isfinite(p).all()) for p in plain.params)
        if not finite:
            stopped = f"non-finite loss at epoch {epoch}"
            print(f"{tag} stopped: {stopped}", flush=True)
            break
        if _is_checkpoint(epoch, every, epochs):
            entry = {
                "epoch": epoch,
                "wall_s": train,
                "elapsed_s": time.perf_counter() - part.t_created,
                "evals": evals,
                "loss": last,
                "errors": evaluator(plain.net),
            }
            part.add(entry)
            _progress(tag, epoch, epochs, entry, time.perf_counter() - part.t_created)
    part.finish(stopped)


# --------------------------------------------------------------------------- merge, summary
@contextlib.contextmanager
def _locked(out: str, problem: str) -> Iterator[None]:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f".{problem}.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_parts(out: str, problem: str) -> list[dict[str, Any]]:
    """The part files of a problem, sorted by implementation and seed (unreadable ones are
    skipped with a message)."""
    parts: list[dict[str, Any]] = []
    for path in sorted(glob.glob(os.path.join(out, "parts", problem, "*-seed*.json"))):
        try:
            with open(path) as fh:
                parts.append(json.load(fh))
        except (OSError, json.JSONDecodeError) as e:
            print(f"merge: skipping {path}: {e}", file=sys.stderr)
    order = {name: i for i, name in enumerate(IMPLEMENTATIONS)}
    parts.sort(key=lambda p: (order.get(p["implementation"], 9), p["seed"]))
    return parts


def merge(out: str, problem: str, plot: bool = True) -> str | None:
    """Combines the problem's part files into <out>/<problem>.json, .md and .png.

    Returns:
        The JSON path, or None when there are no parts.
    """
    with _locked(out, problem):
        parts = load_parts(out, problem)
        if not parts:
            return None
        payload = {
            "problem": problem,
            "merged": time.strftime("%Y-%m-%d %H:%M:%S"),
            "what": (
                "fluxkern.solve against the same method in plain PyTorch (bench/problem_steps.py "
                "PlainTorch, torch.optim.LBFGS), equal epochs, same seeds; wall_s is training "
                "time (evaluations excluded)"
            ),
            "runs": parts,
        }
        stem = os.path.join(out, problem)
        _atomic_json(stem + ".json", payload)
        _atomic_text(stem + ".md", summary_markdown(payload))
        if plot:
            write_plot(payload, stem + ".png")
    return stem + ".json"


def _metrics(runs: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for r in runs:
        for e in r["trajectory"]:
            for k in e["errors"]:
                if k not in names:
                    names.append(k)
    return names


def _values(runs: list[dict[str, Any]], impl: str, epoch: int, key: str) -> list[float]:
    vals = []
    for r in runs:
        if r["implementation"] != impl:
            continue
        for e in r["trajectory"]:
            if e["epoch"] == epoch:
                v = e.get(key) if key in ("wall_s", "evals") else e["errors"].get(key)
                if v is not None and math.isfinite(v):
                    vals.append(float(v))
    return vals


def verdict(a: list[float], b: list[float]) -> str:
    """Whether two implementations' seed ranges of one error overlap.

    Args:
        a: fluxkern's values over seeds.
        b: plain's values over seeds.

    Returns:
        "within seed spread" when the min-max ranges overlap (up to OVERLAP_SLACK, relative),
        else "no: fluxkern lower" or "no: plain lower"; "-" when either list is empty.
    """
    if not a or not b:
        return "-"
    lo, hi = max(min(a), min(b)), min(max(a), max(b))
    if lo <= hi + OVERLAP_SLACK * max(abs(lo), abs(hi)):
        return "within seed spread"
    return "no: fluxkern lower" if max(a) < min(b) else "no: plain lower"


def _stat(vals: list[float], fmt: str = ".3e") -> tuple[str, str]:
    if not vals:
        return "-", "-"
    mean = statistics.fmean(vals)
    return format(mean, fmt), f"{min(vals):.3e} - {max(vals):.3e}"


def _fmt_s(vals: list[float]) -> str:
    if not vals:
        return "-"
    return f"{statistics.fmean(vals):.1f} ({min(vals):.1f} - {max(vals):.1f})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def summary_markdown(payload: dict[str, Any]) -> str:
    """The markdown summary of a merged payload (see the module docstring)."""
    runs = payload["runs"]
    problem = payload["problem"]
    epochs = sorted({e["epoch"] for r in runs for e in r["trajectory"]})
    seeds = {
        impl: sorted(r["seed"] for r in runs if r["implementation"] == impl)
        for impl in IMPLEMENTATIONS
    }
    first = runs[0]
    m = first["machine"]
    src = first.get("fluxkern_source", {})
    lines = [
        f"# Fidelity: {problem}, fluxkern.solve against plain PyTorch at equal epochs",
        "",
        f"Merged {payload['merged']}. Machine: {m.get('cpu')} ({m.get('cores')} cores, "
        f"{m.get('torch_threads')} torch threads); Python {m.get('python')}, torch "
        f"{m.get('torch')}, fluxkern {m.get('fluxkern')} (checkout {src.get('commit')}, "
        f"modified: {', '.join(src.get('modified', [])) or 'none'}).",
        "",
        "fluxkern: `fluxkern.solve` (fused loss, fluxkern.optim.LBFGS). plain: "
        "bench/problem_steps.py `PlainTorch` (the same loss in plain PyTorch autograd, "
        "torch.optim.LBFGS lr 1, max_iter 20, history 100, strong Wolfe, one optimizer per run, "
        "then the same dual rule each epoch). Same seed, same initial weights and points (checked "
        "below). Errors on the problem's evaluation grid; mean is the arithmetic mean over seeds; "
        "'within seed spread' = the two min-max ranges over seeds overlap (with one seed a "
        "range is one value and the column only says which is lower). Equal seeds do not give "
        "equal trajectories: round-off differences between the fused and the autograd "
        "gradients grow over the epochs, so the seed spread is the yardstick.",
        "",
        "## Runs",
        "",
    ]
    rows = []
    for r in runs:
        o = r["options"]
        last = r["trajectory"][-1]["epoch"] if r["trajectory"] else None
        state = "complete" if r["complete"] else (r["stopped"] or "running or killed")
        la = r.get("loadavg_start", [None])[0]
        rows.append(
            [
                r["implementation"],
                str(r["seed"]),
                f"{last}/{o['epochs']}",
                str(o["every"]),
                o["dtype"],
                str(o["threads"]),
                state,
                r.get("started", "-"),
                f"{la:.2f}" if la is not None else "-",
            ]
        )
    header = ["impl.", "seed", "epochs done", "every", "dtype", "threads", "state", "started"]
    lines.append(_table([*header, "load avg at start"], rows))
    lines += ["", "## Initial state (fluxkern.solve with epochs=0 against PlainTorch)", ""]
    checks: dict[int, dict[str, Any]] = {}
    for r in runs:
        checks.setdefault(r["seed"], r["initial_check"])
    rows = [
        [
            str(s),
            repr(c["solve_loss"]),
            repr(c["plain_loss"]),
            f"{c['rel_diff']:.1e}",
            "yes" if c["weights_identical"] else "NO",
        ]
        for s, c in sorted(checks.items())
    ]
    header = ["seed", "solve's initial loss", "plain initial loss", "rel. diff", "same weights"]
    lines.append(_table(header, rows))
    for key in _metrics(runs):
        lines += ["", f"## {key}", ""]
        rows = []
        for ep in epochs:
            a = _values(runs, "fluxkern", ep, key)
            b = _values(runs, "plain", ep, key)
            am, ar = _stat(a)
            bm, br = _stat(b)
            rows.append([str(ep), am, ar, str(len(a)), bm, br, str(len(b)), verdict(a, b)])
        header = ["epoch", "fluxkern mean", "fluxkern min - max", "n", "plain mean"]
        header += ["plain min - max", "n", "within seed spread?"]
        lines.append(_table(header, rows))
    lines += [
        "",
        "## Training time (s, mean (min - max) over seeds; evaluations excluded) and closure "
        "evaluations",
        "",
    ]
    rows = []
    for ep in epochs:
        cells = [str(ep)]
        for impl in IMPLEMENTATIONS:
            cells.append(_fmt_s(_values(runs, impl, ep, "wall_s")))
        for impl in IMPLEMENTATIONS:
            w = _values(runs, impl, ep, "wall_s")
            cells.append(f"{statistics.fmean(w) / ep:.3f}" if w and ep else "-")
        for impl in IMPLEMENTATIONS:
            n = _values(runs, impl, ep, "evals")
            cells.append(f"{statistics.fmean(n):.0f}" if n else "-")
        rows.append(cells)
    header = ["epoch", "fluxkern s", "plain s", "fluxkern s/epoch", "plain s/epoch"]
    header += ["fluxkern evals", "plain evals"]
    lines.append(_table(header, rows))
    lines.append("")
    lines.append(
        f"Seeds: fluxkern {seeds['fluxkern'] or '-'}, plain {seeds['plain'] or '-'}. Times "
        "depend on what else ran on the machine (load average above)."
    )
    return "\n".join(lines) + "\n"


def write_plot(payload: dict[str, Any], path: str) -> None:
    """Errors against epochs (log y), one panel per error, one line per seed and
    implementation, fluxkern and plain in two colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = payload["runs"]
    keys = _metrics(runs)
    if not keys:
        return
    ncol = min(2, len(keys))
    nrow = (len(keys) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.0 * ncol, 3.8 * nrow), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        for r in runs:
            pts = [
                (e["epoch"], e["errors"][key])
                for e in r["trajectory"]
                if key in e["errors"] and e["errors"][key] and e["errors"][key] > 0
            ]
            if not pts:
                continue
            x, y = zip(*pts, strict=True)
            impl = r["implementation"]
            style = STYLES.get(impl, "-")
            ax.plot(x, y, style, color=COLOURS.get(impl, "gray"), lw=1.2, ms=2.5, alpha=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    handles = [
        plt.Line2D([], [], color=COLOURS[i], ls=STYLES[i][:-1], label=LABELS[i])
        for i in IMPLEMENTATIONS
        if any(r["implementation"] == i for r in runs)
    ]
    fig.suptitle(f"{payload['problem']}: error vs epoch, one line per seed", fontsize=11)
    top = 1.0 - 0.75 / (3.8 * nrow)  # room for the title and the legend
    fig.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, top + 0.01), ncol=2, fontsize=9
    )
    fig.tight_layout(rect=(0, 0, 1, top - 0.03))
    tmp = f"{path}.{os.getpid()}.tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- command line
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="python bench/fidelity.py",
        description="Error trajectories of fluxkern.solve and of the same method in plain "
        "PyTorch at equal epochs, over seeds.",
    )
    p.add_argument("problems", nargs="+", metavar="PROBLEM", help="benchmark problem(s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--every", type=int, default=50, help="epochs between error checkpoints")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--out", default=DEFAULT_OUT, help="output folder")
    p.add_argument("--which", choices=("fluxkern", "plain", "both"), default="both")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument(
        "--skip-complete",
        action="store_true",
        help="skip (implementation, seed) runs whose part file is complete with the same "
        "epochs, every and dtype",
    )
    p.add_argument(
        "--merge", action="store_true", help="only merge the existing part files into the summary"
    )
    args = p.parse_args(argv)
    known = fk.problems.names()
    for name in args.problems:
        if name not in known:
            p.error(f"unknown problem {name!r}; choose from {', '.join(known)}")
    if args.epochs < 0:
        p.error(f"--epochs must be >= 0, got {args.epochs}")
    if args.every < 1:
        p.error(f"--every must be >= 1, got {args.every}")
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f"--seeds repeats a seed: {args.seeds}")
    return args


def _complete(out: str, problem: str, impl: str, seed: int, options: dict[str, Any]) -> bool:
    try:
        with open(part_path(out, problem, impl, seed)) as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError):
        return False
    same = all(data["options"].get(k) == options[k] for k in ("epochs", "every", "dtype"))
    return bool(data.get("complete")) and same


def run_problem(name: str, args: argparse.Namespace) -> str | None:
    """Every requested (seed, implementation) run of one problem; returns the merged JSON."""
    out = os.path.abspath(args.out)
    impls = IMPLEMENTATIONS if args.which == "both" else (args.which,)
    dtype = getattr(torch, args.dtype)
    options = {
        "epochs": args.epochs,
        "every": args.every,
        "dtype": args.dtype,
        "threads": args.threads,
        "which": args.which,
        "seeds": list(args.seeds),
    }
    problem = fk.problems.get(name)
    evaluator = Evaluator(problem, dtype)
    for seed in args.seeds:
        todo = [
            i for i in impls if not (args.skip_complete and _complete(out, name, i, seed, options))
        ]
        for i in (i for i in impls if i not in todo):
            print(f"[{name} {i} seed {seed}] complete part found; skipped", flush=True)
        if not todo:
            continue
        case = make_case(name, seed, dtype)
        plain = ps.PlainTorch(case, name="plain PyTorch")
        check = initial_check(problem, case, plain, seed)
        for impl in todo:
            part = Part(out, name, impl, seed, options, check)
            if impl == "fluxkern":
                run_fluxkern(problem, case, evaluator, part, args.epochs, args.every)
            else:
                run_plain(problem, case, plain, evaluator, part, args.epochs, args.every)
    path = merge(out, name)
    if path:
        print(f"[{name}] results: {path}, {path[:-5]}.md, {path[:-5]}.png", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """Runs (or merges) the fidelity comparison; returns the exit code."""
    args = parse(argv)
    if args.merge:
        code = 0
        for name in args.problems:
            path = merge(os.path.abspath(args.out), name)
            if path is None:
                print(f"[{name}] no part files under {args.out}/parts/{name}", file=sys.stderr)
                code = 1
            else:
                print(f"[{name}] merged: {path}, {path[:-5]}.md, {path[:-5]}.png")
        return code
    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        for name in args.problems:
            run_problem(name, args)
    except KeyboardInterrupt:  # solve raises InterruptedRun, a KeyboardInterrupt
        print("interrupted; the part files keep every checkpoint so far", file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(threads_before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
