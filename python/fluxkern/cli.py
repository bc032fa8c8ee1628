"""The `fluxkern` command: list the problems, solve one, diagnose gradients and landscapes."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from fluxkern import config_file
from fluxkern.cli_parser import UsageError, build_parser, load_config

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_NONFINITE = 3
EXIT_DISTRIBUTED = 4
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM


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


def _scale(flag: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{flag} takes NAME=SCALE with SCALE a number; got {text!r}") from None


def _start_epochs(flag: str, text: str) -> list[Any]:
    start, sep, epochs = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return [float(start), int(epochs)]
    except ValueError:
        raise UsageError(
            f"{flag} takes NAME=START:EPOCHS (e.g. alpha=0.1:100); got {text!r}"
        ) from None


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
    if args.output_scale:
        opts["output_scale"] = _pairs("--output-scale", args.output_scale, _scale)
    if args.continuation and args.no_continuation:
        raise UsageError("--continuation and --no-continuation: give one")
    if args.continuation:
        opts["continuation"] = _pairs("--continuation", args.continuation, _start_epochs)
    if args.no_continuation:
        opts["continuation"] = {}
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
    config: dict[str, Any] = load_config(args.config) if args.config else {}
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
    parser = build_parser()
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
