"""The `fluxkern` command: list the problems, solve one, diagnose gradients and landscapes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_NONFINITE = 3
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad command line or config file: one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise UsageError(message)


def _load_config(path: str) -> dict[str, Any]:
    """Reads a TOML config whose keys are solve options; checks keys and types."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    from fluxkern.solver import SolveOptions, option_names

    try:
        with open(path, "rb") as fh:
            cfg = tomllib.load(fh)
    except OSError as exc:
        raise UsageError(f"config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config {path}: not valid TOML ({exc})") from None
    valid = [n for n in option_names() if n not in ("out", "resume")]
    types = {
        "epochs": int,
        "checkpoint_every": int,
        "seed": int,
        "lr": (int, float),
        "optimizer": str,
        "dtype": str,
        "device": str,
        "backend": str,
        "formulation": str,
        "dual": str,
        "dual_options": dict,
        "matmul_precision": str,
        "progress": bool,
        "plots": bool,
    }
    for key, val in cfg.items():
        if key not in valid:
            raise UsageError(f"config {path}: unknown key {key!r}; valid keys: {', '.join(valid)}")
        want = types.get(key)
        if want is not None and (
            not isinstance(val, want) or (want is int and isinstance(val, bool))
        ):
            names = want.__name__ if isinstance(want, type) else "number"
            raise UsageError(f"config {path}: {key!r} must be {names}, got {val!r}")
        if key in SolveOptions.CHOICES and val not in SolveOptions.CHOICES[key]:
            choices = ", ".join(str(c) for c in SolveOptions.CHOICES[key] if c is not None)
            raise UsageError(f"config {path}: {key} must be one of {choices}; got {val!r}")
    return cfg


def _build_parser() -> _Parser:
    p = _Parser(prog="fluxkern", description="Physics-constrained neural PDE solver (flux form).")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    sub.add_parser("list", help="list the problems, one line each")
    s = sub.add_parser("solve", help="solve a problem")
    s.add_argument("name", help="problem name (see `fluxkern list`)")
    s.add_argument("--epochs", type=int)
    s.add_argument("--optimizer", choices=["adam", "lbfgs"])
    s.add_argument("--lr", type=float)
    s.add_argument("--dtype", choices=["float32", "float64"])
    s.add_argument("--device", choices=["cpu", "cuda"])
    s.add_argument("--backend", choices=["torch", "cpu", "cuda"])
    s.add_argument("--seed", type=int)
    s.add_argument("--formulation", choices=["flux", "pinn"])
    s.add_argument("--dual", choices=["rmsprop", "pecann", "capu"])
    s.add_argument(
        "--matmul-precision",
        choices=["ieee", "tf32"],
        help="float32 GEMMs of the fused ops on CUDA: ieee (default) or tf32 (no effect on CPU)",
    )
    s.add_argument("--config", metavar="FILE.toml", help="solve options as TOML keys")
    s.add_argument("--out", metavar="DIR", help="output folder (default runs/NAME-FORMULATION)")
    s.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    s.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    s.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    _add_diagnose_parser(sub)
    return p


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


def _cmd_solve(args: argparse.Namespace) -> int:
    from fluxkern import problems, solver

    try:  # a registered name, a problem file FILE.py[:ATTR] or MODULE:ATTR
        problem = problems.resolve(args.name)
    except problems.ProblemLoadError as exc:
        raise UsageError(str(exc)) from None
    opts: dict[str, Any] = _load_config(args.config) if args.config else {}
    for key in (
        "epochs",
        "optimizer",
        "lr",
        "dtype",
        "device",
        "backend",
        "seed",
        "formulation",
        "dual",
        "matmul_precision",
    ):
        val = getattr(args, key)
        if val is not None:
            opts[key] = val
    if args.epochs is not None and args.epochs < 0:
        raise UsageError(f"--epochs must be >= 0, got {args.epochs}")
    if args.no_progress:
        opts["progress"] = False
    if args.no_plots:
        opts["plots"] = False
    formulation = opts.get("formulation", "flux")
    opts["out"] = args.out or f"runs/{problem.name}-{formulation}"
    opts["resume"] = args.resume
    try:
        results = solver.solve(problem, **opts)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except solver.NonFiniteLossError as exc:
        print(f"fluxkern: {exc}", file=sys.stderr)
        return EXIT_NONFINITE
    except solver.InterruptedRun as exc:
        print(f"fluxkern: {exc} (--resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
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
        The exit code: 0 success, 2 bad usage or config, 3 non-finite loss, 130 interrupted.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "list":
            return _cmd_list()
        if args.command == "solve":
            return _cmd_solve(args)
        if args.command == "diagnose":
            return _cmd_diagnose(args)
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"fluxkern: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
