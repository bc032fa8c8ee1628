"""The `fluxkern` command: list the problems, solve one, diagnose gradients and landscapes."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

from fluxkern import config_file

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_NONFINITE = 3
EXIT_DISTRIBUTED = 4
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM


class UsageError(Exception):
    """A bad command line or config file: one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise UsageError(message)


def _load_config(path: str) -> dict[str, Any]:
    try:
        return config_file.load(path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _build_parser() -> _Parser:
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


def _cmd_list() -> int:
    from fluxkern import problems

    for name in problems.names():
        print(f"{name:22s} {problems.get(name).summary}")
    return 0


_COMMAND_LINE_OPTIONS = (
    "epochs",
    "optimizer",
    "then_optimizer",
    "switch_epoch",
    "lr",
    "dtype",
    "device",
    "backend",
    "seed",
    "formulation",
    "dual",
    "matmul_precision",
    "resample_every",
    "resample_method",
    "resample_final",
    "time_limit",
)


def _count(flag: str, text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"{flag} takes NAME=N with N a whole number; got {text!r}") from None
    if n < 0:
        raise UsageError(f"{flag}: N must be >= 0; got {n}")
    return n


def _json_or_text(flag: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pairs(flag: str, items: list[str], parse: Any) -> dict[str, Any]:
    """NAME=VALUE items into a dict (later items win), VALUE parsed by parse(flag, text)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise UsageError(f"{flag} takes NAME=VALUE; got {item!r}")
        out[name] = parse(flag, text)
    return out


def _command_line_options(args: argparse.Namespace) -> dict[str, Any]:
    """The solve options given on the command line (out and resume aside)."""
    if args.epochs is not None and args.epochs < 0:
        raise UsageError(f"--epochs must be >= 0, got {args.epochs}")
    opts = {k: getattr(args, k) for k in _COMMAND_LINE_OPTIONS if getattr(args, k) is not None}
    if args.points:
        opts["points"] = _pairs("--points", args.points, _count)
    if args.problem_option:
        opts["problem_options"] = _pairs("--problem-option", args.problem_option, _json_or_text)
    if args.resample_keep_optimizer:
        opts["resample_keep_optimizer"] = True
    if args.no_progress:
        opts["progress"] = False
    if args.no_plots:
        opts["plots"] = False
    if args.no_unseen_check:
        opts["unseen_check"] = False
    if args.no_resample_auto:
        opts["resample_auto"] = False
    if args.distributed or "WORLD_SIZE" in os.environ:  # torchrun sets WORLD_SIZE
        opts["distributed"] = True
    return opts


def _print_config(problem: Any, layers: list[tuple[str, dict[str, Any]]], out: str) -> int:
    """Writes the effective options of a solve as TOML on stdout; solves nothing."""
    from fluxkern import solver

    sources = {k: "problem" for k in problem.defaults}
    merged: dict[str, Any] = {}
    for name, layer in layers:
        sources.update({k: name for k in layer})
        merged.update(layer)
    try:  # bad options, or a value TOML cannot hold (ConfigError)
        opts = solver.effective_options(problem, **merged)
        text = config_file.to_toml(problem, opts, sources, out)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    sys.stdout.write(text)
    return 0


def _cmd_solve(args: argparse.Namespace) -> int:
    from fluxkern import problems, solver
    from fluxkern.distributed import DistributedError

    try:  # a registered name, a problem file FILE.py[:ATTR] or MODULE:ATTR
        problem = problems.resolve(args.name)
    except problems.ProblemLoadError as exc:
        raise UsageError(str(exc)) from None
    config: dict[str, Any] = _load_config(args.config) if args.config else {}
    command_line = _command_line_options(args)
    opts = {**config, **command_line}
    formulation = opts.get("formulation", "flux")
    out = args.out or f"runs/{problem.name}-{formulation}"
    if args.print_config:
        layers = [(f"config {args.config}", config), ("command line", command_line)]
        return _print_config(problem, layers, out if args.out else f"{out} (the default)")
    opts["out"], opts["resume"] = out, args.resume
    try:
        results = solver.solve(problem, **opts)
    except ValueError as exc:  # RunFileError included: "PATH: what is wrong"
        raise UsageError(str(exc)) from None
    except solver.NonFiniteLossError as exc:
        print(f"fluxkern: {exc}", file=sys.stderr)
        return EXIT_NONFINITE
    except solver.TerminatedRun as exc:
        print(f"fluxkern: {exc} (--resume)", file=sys.stderr)
        return EXIT_TERMINATED
    except solver.InterruptedRun as exc:
        print(f"fluxkern: {exc} (--resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DistributedError as exc:  # a rank died or stalled
        print(f"fluxkern: error: {exc}", file=sys.stderr)
        return EXIT_DISTRIBUTED
    if results.get("distributed") is not None:
        from fluxkern.distributed import shutdown

        shutdown()
        if int(os.environ.get("RANK", "0")) != 0:
            return 0  # rank 0 reports
    errs = ", ".join(f"{k} {v:.3e}" for k, v in results["errors"].items())
    print(
        f"{results['problem']} ({results['formulation']}): relative L2 {errs or 'n/a'}; "
        f"{results['wall_time_s']:.1f} s for {results['epochs']} epochs; results in "
        f"{opts['out']}"
    )
    if "max_centreline_deviation" in results:
        print(
            f"  largest centreline deviation from the reference: "
            f"{results['max_centreline_deviation']:.3e}"
        )
    return 0


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from fluxkern import diagnostics, problems

    if args.diagnostic == "gradients":
        if args.name not in problems.names():
            raise UsageError(
                f"unknown problem {args.name!r}; choose from {', '.join(problems.names())}"
            )
        if args.samples < 1:
            raise UsageError(f"--samples must be >= 1, got {args.samples}")
        out = args.out or f"runs/diagnostics/{args.name}"
        try:
            res = diagnostics.gradient_sensitivity(
                args.name, seed=args.seed, samples=args.samples, out=out, run=args.run
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        mags = res["orders"]["0"]["weight_perturbation"]["magnitudes"]
        eps = res["orders"]["0"]["output_perturbation"]["magnitudes"]
        print(
            f"{res['problem']} at {res['at']}: median ||g' - g|| / ||g|| over "
            f"{res['samples']} samples "
            f"(weights at {', '.join(f'{v:g}' for v in mags)}; "
            f"outputs at eps {', '.join(f'{v:g}' for v in eps)})"
        )
        for order, r in res["orders"].items():
            w = " ".join(f"{v:.2e}" for v in r["weight_perturbation"]["median"])
            o = " ".join(f"{v:.2e}" for v in r["output_perturbation"]["median"])
            print(
                f"  order {order}: weights {w} | outputs {o} | cos(two draws) "
                f"{r['cosine_two_draws']:.4f} | kurtosis {r['excess_kurtosis']:.2f}"
            )
        print(f"  {res['time_s']:.1f} s; results in {out}")
        return 0
    if args.diagnostic == "landscape":
        if args.grid < 2:
            raise UsageError(f"--grid must be >= 2, got {args.grid}")
        if not args.span > 0:
            raise UsageError(f"--span must be > 0, got {args.span}")
        out = args.out or os.path.join(args.run, "landscape")
        try:
            res = diagnostics.loss_landscape(
                args.run,
                grid=args.grid,
                out=out,
                compare=args.compare,
                seed=args.seed,
                span=args.span,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        for r in [res] + ([res["compare"]] if "compare" in res else []):
            print(
                f"{r['problem']} ({r['formulation']}, {r['run']}): L(0) {r['origin_loss']:.3e}, "
                f"grid min {r['min_loss']:.3e} at {r['argmin']}, max {r['max_loss']:.3e}, "
                f"{r['local_minima']} local minima; {r['evaluations']} evaluations in "
                f"{r['time_s']:.1f} s"
            )
        print(f"  results in {out}")
        return 0
    raise UsageError("diagnose: choose gradients or landscape")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script.

    Args:
        argv: Arguments (default sys.argv[1:]).

    Returns:
        The exit code: 0 success, 2 bad usage or config, 3 non-finite loss, 4 a distributed
            run's rank died or stalled, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM:
            training ends after the current epoch with a final checkpoint).
    """
    previous = _on_sigterm_before_training()
    try:
        return _main(argv)
    except KeyboardInterrupt as exc:  # Ctrl-C before or after training, or SIGTERM then
        if isinstance(exc, _Terminated):
            print("fluxkern: terminated (SIGTERM) outside training", file=sys.stderr)
            return EXIT_TERMINATED
        print("fluxkern: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print("fluxkern: error: out of memory; use fewer points", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Terminated(KeyboardInterrupt):
    """SIGTERM outside training (training has its own handler: fluxkern.signals)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


def _on_sigterm_before_training() -> Any:
    """Makes SIGTERM outside training end the command with one line; returns the handler it
    replaced (None where handlers cannot be set: not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _main(argv: Sequence[str] | None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "list":
            return _cmd_list()
        if args.command == "solve":
            code = _cmd_solve(args)
            if argv is None and "fluxkern.distributed" in sys.modules:  # a launched rank
                from fluxkern.distributed import end_process

                end_process(code)  # skips torch's teardown if a process group was made here
            return code
        if args.command == "diagnose":
            return _cmd_diagnose(args)
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"fluxkern: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
