"""The `fluxkern` command's arguments: the parser of list, solve and diagnose, every option's
help with its default, and the one-line usage error (exit code 2)."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from fluxkern import config_file

__all__ = ["UsageError", "build_parser", "load_config"]


class UsageError(Exception):
    """A bad command line or config file: one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise UsageError(message)


def load_config(path: str) -> dict[str, Any]:
    """A config file's options (fluxkern.config_file.load); a bad file is a UsageError."""
    try:
        return config_file.load(path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def build_parser() -> _Parser:
    """The `fluxkern` command's parser: list, solve and diagnose."""
    p = _Parser(prog="fluxkern", description="Physics-constrained neural PDE solver (flux form).")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    sub.add_parser("list", help="list the problems, one line each")
    _add_solve_parser(sub)
    _add_diagnose_parser(sub)
    return p


_SOLVE_EPILOG = """\
A problem's own defaults replace the defaults named above (the built-in problems set epochs,
optimizer, dtype, dual and dual_options); --config FILE.toml replaces both, the command line
all three. --print-config shows the result and where each value comes from; a config file takes
the same keys (out and resume are command line only). A bad option, config or file (config,
output folder, checkpoint, results) ends the run with one line on stderr and exit code 2.
"""


def _add_solve_parser(sub: Any) -> None:
    """The `solve` subcommand; every option's help names its default."""
    s = sub.add_parser(
        "solve",
        help="solve a problem",
        description="Train a problem's network; write results, checkpoint, model and plots.",
        epilog=_SOLVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument(
        "name",
        help=(
            "a registered problem name (see `fluxkern list`), a problem file FILE.py[:ATTR] "
            "or MODULE:ATTR (README: Your own problem)"
        ),
    )
    _add_training_options(s)
    _add_run_options(s)


def _add_training_options(s: argparse.ArgumentParser) -> None:
    """solve's options of the training: the optimizer, then the rest (SolveOptions fields)."""
    from fluxkern.solver import SolveOptions

    d = SolveOptions()
    own = "default: from the problem; {} if it sets none"
    s.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help=f"outer iterations: a primal step and a dual update each ({own.format(d.epochs)})",
    )
    s.add_argument(
        "--optimizer",
        choices=list(SolveOptions.CHOICES["optimizer"]),
        help="primal optimizer; lbfgs: strong Wolfe, max_iter 20, history 100; ssbfgs, "
        "ssbroyden: dense self-scaled quasi-Newton (<= 20000 parameters); gauss_newton: "
        f"Levenberg-Marquardt, flux formulation ({own.format(d.optimizer)})",
    )
    s.add_argument(
        "--then-optimizer",
        choices=list(SolveOptions.CHOICES["optimizer"]),
        help="a second optimizer, from --switch-epoch on (e.g. lbfgs, then ssbroyden); its "
        "options: [then_optimizer_options] in --config (default: none)",
    )
    s.add_argument(
        "--switch-epoch",
        type=int,
        metavar="N",
        help="epochs run with --optimizer before --then-optimizer takes over (default: none)",
    )
    s.add_argument(
        "--lr",
        type=float,
        help="learning rate (default: 1.0 for lbfgs, ssbfgs, ssbroyden; 0.001 for adam)",
    )
    _add_setup_options(s, d, own)


def _add_setup_options(s: argparse.ArgumentParser, d: Any, own: str) -> None:
    """solve's options of what is trained and how (the rest of the SolveOptions fields; d: the
    SolveOptions defaults, own: the help text of a default the problem may set)."""
    s.add_argument(
        "--dtype",
        choices=list(d.CHOICES["dtype"]),
        help=f"float type of the network and the points ({own.format(d.dtype)})",
    )
    s.add_argument(
        "--device",
        choices=list(d.CHOICES["device"]),
        help=f"device of the network and the points (default: {d.device})",
    )
    s.add_argument(
        "--backend",
        choices=[c for c in d.CHOICES["backend"] if c is not None],
        help="backend of the fused ops (default: the fastest available for the device)",
    )
    s.add_argument(
        "--seed", type=int, help=f"seed of the network and the points (default: {d.seed})"
    )
    s.add_argument(
        "--formulation",
        choices=list(d.CHOICES["formulation"]),
        help="flux (augmented Lagrangian) or pinn (second-order, plain penalties) "
        f"(default: {d.formulation})",
    )
    s.add_argument(
        "--dual",
        choices=list(d.CHOICES["dual"]),
        help=f"dual update rule; its options: [dual_options] in --config ({own.format(d.dual)})",
    )
    s.add_argument(
        "--points",
        action="append",
        metavar="NAME=N",
        help="N points for the point set NAME (e.g. interior=10000) or for the problem's count "
        "key (e.g. n_face=512); repeat for more (default: the problem's counts)",
    )
    s.add_argument(
        "--output-scale",
        action="append",
        metavar="NAME=SCALE",
        help="the field NAME is the network's raw output times SCALE (e.g. q=1e-4 where q is "
        "~1e-4 and u ~1), so that every raw output is O(1); repeat for more (default: 1)",
    )
    s.add_argument(
        "--continuation",
        action="append",
        metavar="NAME=START:EPOCHS",
        help="move the problem parameter NAME from START to its own value, geometrically, over "
        "the first EPOCHS epochs (e.g. alpha=0.1:100: a thin layer learnt first where the points "
        "resolve it); repeat for more (default: the problem's own, e.g. convection_diffusion's)",
    )
    s.add_argument(
        "--no-continuation",
        action="store_true",
        help="no parameter continuation, not even the problem's own (default: the problem's "
        "continuation, if it has one)",
    )
    s.add_argument(
        "--problem-option",
        action="append",
        metavar="KEY=VALUE",
        help="one of the problem's own options or parameters (e.g. ic_form=squared, "
        "beta=30); VALUE is read as JSON, else as a string; repeat for more (default: the "
        "problem's)",
    )
    s.add_argument(
        "--resample-every",
        type=int,
        metavar="N",
        help="redraw the points every N epochs; pointwise multipliers reset at each draw "
        "(default: one draw)",
    )
    s.add_argument(
        "--resample-keep-optimizer",
        action="store_true",
        help="with --resample-every: keep the optimizer's state across a draw (default: reset)",
    )
    s.add_argument(
        "--resample-method",
        choices=list(d.CHOICES["resample_method"]),
        help="with --resample-every: uniform (the problem's own draw) or rad (the objective's "
        "points drawn by residual from a dense candidate set) (default: uniform)",
    )
    s.add_argument(
        "--resample-final",
        type=float,
        metavar="FRACTION",
        help="with --resample-every: the last FRACTION of the run (epochs or --time-limit) on "
        f"one fixed set of twice the points; 0: redraws to the end (default: {d.resample_final})",
    )
    s.add_argument(
        "--no-resample-auto",
        action="store_true",
        help="without --resample-every: never turn redraws on (default: on once the residuals on "
        "fresh points exceed 10x the training ones, checked every 20 epochs: residual-based "
        "redraws from there)",
    )
    s.add_argument(
        "--matmul-precision",
        choices=list(d.CHOICES["matmul_precision"]),
        help="float32 GEMMs of the fused ops on CUDA; no effect on CPU "
        f"(default: {d.matmul_precision})",
    )


def _add_run_options(s: argparse.ArgumentParser) -> None:
    """solve's options of the run around the training: config, output folder, resume, output."""
    s.add_argument(
        "--config",
        metavar="FILE.toml",
        help="solve options as TOML keys, below the command line's (default: none)",
    )
    s.add_argument(
        "--time-limit",
        type=float,
        metavar="SECONDS",
        help="end the training after the epoch in which SECONDS of training have passed, "
        "writing results and plots as at the last epoch (default: no limit)",
    )
    s.add_argument("--out", metavar="DIR", help="output folder (default: runs/NAME-FORMULATION)")
    s.add_argument(
        "--resume",
        action="store_true",
        help="continue from DIR/checkpoint.pt (default: off, start anew)",
    )
    s.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress line on stderr (default: a progress line)",
    )
    s.add_argument(
        "--no-plots", action="store_true", help="write no PNG plots (default: plots written)"
    )
    s.add_argument(
        "--no-unseen-check",
        action="store_true",
        help="no check of the residuals on fresh points (default: every 10 epochs or 5%% of "
        "the run, and a warning when they are orders of magnitude above the training ones)",
    )
    s.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the ranks of torchrun (README: Distributed training) "
        "(default: on under torchrun, which sets WORLD_SIZE; off otherwise)",
    )
    s.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective options as TOML for --config and exit, solving nothing "
        "(default: off)",
    )


def _add_diagnose_parser(sub: Any) -> None:
    d = sub.add_parser("diagnose", help="gradient sensitivity per derivative order; loss landscape")
    dsub = d.add_subparsers(dest="diagnostic", parser_class=_Parser)
    g = dsub.add_parser("gradients", help="gradient sensitivity of order 0, 1, 2 losses at init")
    g.add_argument("name", help="problem name (one with a PINN form)")
    g.add_argument("--out", metavar="DIR", help="output folder (default runs/diagnostics/NAME)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--samples", type=int, default=16, help="random perturbations per magnitude")
    g.add_argument("--run", metavar="DIR", help="a flux run (model.pt): its trained weights")
    ls = dsub.add_parser("landscape", help="loss landscape of a trained run (needs model.pt)")
    ls.add_argument("--run", metavar="DIR", required=True, help="a run folder holding model.pt")
    ls.add_argument("--grid", type=int, default=64, help="points per axis (>= 2)")
    ls.add_argument("--compare", metavar="DIR2", help="a second run of the problem, side by side")
    ls.add_argument("--seed", type=int, default=0, help="seed of the random directions")
    ls.add_argument("--span", type=float, default=1.0, help="half-width of the square (1)")
    ls.add_argument("--out", metavar="DIR", help="output folder (default DIR/landscape)")
