"""Property tests of `fluxkern solve` over its option and config space (hypothesis, issue 26).

Every outcome of a command line and config file is one of:
- exit code 0, and the run's results.json reports the options that were asked for (nothing
  given was silently ignored or replaced);
- exit code 2 (a bad option, config or problem) or 3 (a non-finite loss), with exactly one line
  on stderr and no traceback.
An exception escaping cli.main fails the test.

The problem is tiny (8 points, a 1-4-1-2 network, at most 3 epochs), the command runs in-process
(fluxkern.cli.main), the examples are derandomized and few; the file runs in about 30 s on the
2-core dev VM. --distributed and the config key `distributed` are left out (they start a process
group).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import tempfile
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluxkern import cli
from fluxkern.duals import RULES
from fluxkern.options import SolveOptions

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

PROBLEM = """
import fluxkern as fk
x = fk.inputs("x")
u, q = fk.outputs("u q")
problem = fk.problem(
    name="prop", inputs="x", outputs="u q", domain=(0.0, 1.0),
    points={"p": fk.Sample("interior", 8), "b": fk.Sample("left", 1)},
    terms=lambda pts: [
        fk.Objective("pde", q.d(x) - 1.0, pts["p"]),
        fk.Constraint("flux", q - u.d(x), pts["p"]),
        fk.Constraint("bc", u, pts["b"]),
    ],
    exact=lambda x: {"u": 0.5 * x[:, 0] ** 2, "q": x[:, 0]},
    eval_grid=5, width=4, depth=1,
    defaults={"epochs": 1},
)
"""
DEFAULTS = {"epochs": 1}
# SolveOptions' own defaults (what a run reports where nothing else sets an option)
OPTION_DEFAULTS = dataclasses.asdict(SolveOptions())


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("prop")
    (path / "prop.py").write_text(PROBLEM)
    return str(path)


# ----------------------------------------------------------------------------- the space

JUNK = (
    st.integers(-3, 3)
    | st.sampled_from([2**63, -(2**63)])  # no large valid epochs: runs stay short
    | st.floats(allow_nan=True, allow_infinity=True, width=64)
    | st.booleans()
    | st.text(alphabet="abcxyz01_.-", max_size=6)
    | st.lists(st.integers(-2, 2), max_size=2)
)
NAMES = ["lbfgs", "adam", "ssbfgs", "ssbroyden", "gauss_newton", "sgd"]
SMALL_INT = st.integers(-2, 3)
# Plausible values of each config key (and of its flag), mixed with junk of every type.
VALUES: dict[str, Any] = {
    "epochs": SMALL_INT,
    "optimizer": st.sampled_from(NAMES),
    "then_optimizer": st.sampled_from(NAMES),
    "switch_epoch": SMALL_INT,
    "lr": st.sampled_from([1e-3, 0.5, 1.0, 0.0, -1.0, 1e30]),
    "dtype": st.sampled_from(["float32", "float64", "float16"]),
    "device": st.sampled_from(["cpu", "cuda", "tpu"]),
    "backend": st.sampled_from(["torch", "cpu", "cuda", "fast"]),
    "seed": st.sampled_from([0, 1, 7, -1, 2**63 - 1]),
    "formulation": st.sampled_from(["flux", "pinn"]),
    "dual": st.sampled_from(["rmsprop", "pecann", "capu", "adam"]),
    "matmul_precision": st.sampled_from(["ieee", "tf32", "bf16"]),
    "checkpoint_every": SMALL_INT,
    "resample_every": SMALL_INT,
    "resample_keep_optimizer": st.booleans(),
    "progress": st.booleans(),
    "plots": st.just(False),
}
OPTIMIZER_KEYS = [
    "max_iter",
    "max_eval",
    "history_size",
    "tolerance_grad",
    "tolerance_change",
    "curvature_eps",
    "self_scaling",
    "initial_step",
    "damping",
    "max_rejects",
    "betas",
    "eps",
    "weight_decay",
    "amsgrad",
    "momentum",
]
OPTIMIZER_VALUES = (
    st.integers(-1, 3)
    | st.sampled_from([0.0, 1e-9, 0.5, -1e-3, True, None])
    | st.lists(st.sampled_from([0.0, 0.9, 0.99, 1.0]), max_size=3)
)
DUAL_KEYS = sorted({k for rule in RULES.values() for k in rule.DEFAULTS} | {"gamma"})
DUAL_VALUES = st.sampled_from([0.0, 1e-8, 0.5, 0.9, 1.0, 2.0, -1.0, 1e4]) | JUNK


@st.composite
def option_tables(draw, keys, values) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=3))
    out = {}
    for k in chosen:
        v = draw(values)
        if v is not None:  # TOML has no null
            out[k] = v
    return out


@st.composite
def configs(draw) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from([*VALUES, "epoch", "lrate"]), unique=True, max_size=4))
    cfg: dict[str, Any] = {}
    for k in keys:  # mostly plausible values, junk one time in five
        junk = draw(st.integers(0, 4)) == 0
        cfg[k] = draw(JUNK) if junk or k not in VALUES else draw(VALUES[k])
    for table, tkeys, tvals in [
        ("optimizer_options", OPTIMIZER_KEYS, OPTIMIZER_VALUES),
        ("then_optimizer_options", OPTIMIZER_KEYS, OPTIMIZER_VALUES),
        ("dual_options", DUAL_KEYS, DUAL_VALUES),
    ]:
        if draw(st.integers(0, 3)) == 0:
            cfg[table] = draw(option_tables(tkeys, tvals))
    return cfg


FLAGS = {
    "epochs": "--epochs",
    "optimizer": "--optimizer",
    "then_optimizer": "--then-optimizer",
    "switch_epoch": "--switch-epoch",
    "lr": "--lr",
    "dtype": "--dtype",
    "device": "--device",
    "backend": "--backend",
    "seed": "--seed",
    "formulation": "--formulation",
    "dual": "--dual",
    "matmul_precision": "--matmul-precision",
    "resample_every": "--resample-every",
}


@st.composite
def command_lines(draw) -> list[str]:
    keys = draw(st.lists(st.sampled_from(sorted(FLAGS)), unique=True, max_size=4))
    argv: list[str] = []
    for k in keys:
        junk = st.text(alphabet="abc01e.-", min_size=1, max_size=5)
        v = draw(VALUES[k].map(str) | junk) if draw(st.integers(0, 3)) == 0 else draw(VALUES[k])
        argv += [FLAGS[k], str(v)]
    for flag in ("--resample-keep-optimizer", "--print-config"):
        if draw(st.integers(0, 4)) == 0:
            argv.append(flag)
    return argv


# ----------------------------------------------------------------------------- TOML


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return (
            "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        )
    if isinstance(v, str):
        return json.dumps(v)
    return "[" + ", ".join(toml_value(x) for x in v) + "]"


def to_toml(cfg: dict[str, Any]) -> str:
    lines = [f"{k} = {toml_value(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    for k, v in cfg.items():
        if isinstance(v, dict):
            lines += [f"[{k}]"] + [f"{kk} = {toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def toml_ints_fit(cfg: dict[str, Any]) -> bool:
    """TOML integers are 64-bit: a config holding a larger one is not valid TOML to write."""

    def fits(v: Any) -> bool:
        if isinstance(v, dict):
            return all(fits(x) for x in v.values())
        if isinstance(v, list):
            return all(fits(x) for x in v)
        return not (isinstance(v, int) and not -(2**63) <= v < 2**63)

    return fits(cfg)


# ----------------------------------------------------------------------------- the property


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def given_values(cfg: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """What the run must report: the options' defaults, the problem's, the config's, the
    command line's (each replacing the one before)."""
    want = {**OPTION_DEFAULTS, **DEFAULTS, **cfg}
    flags = {v: k for k, v in FLAGS.items()}
    for flag, value in zip(argv[:-1], argv[1:], strict=True):
        if flag in flags:
            key = flags[flag]
            want[key] = (
                int(value) if key in ("epochs", "seed", "switch_epoch", "resample_every") else value
            )
    if "--resample-keep-optimizer" in argv:
        want["resample_keep_optimizer"] = True
    every = want["resample_every"]
    if every == 0 and not isinstance(every, bool):  # 0: no redraws
        want["resample_every"] = None
    return want


def check_results(folder: str, want: dict[str, Any]) -> None:
    with open(os.path.join(folder, "results.json")) as fh:
        res = json.load(fh)
    for key in (
        "seed",
        "dtype",
        "formulation",
        "then_optimizer",
        "resample_every",
        "matmul_precision",
    ):
        assert res[key] == want[key], (key, res[key], want[key])
    if want["formulation"] == "flux":
        assert res["dual"] == want["dual"]
        for k, v in want["dual_options"].items():
            assert res["dual_options"][k] == float(v), (k, res["dual_options"], want)
    assert res["optimizer"] == want["optimizer"]
    assert res["optimizer_options"] == want["optimizer_options"]
    assert res["then_optimizer_options"] == want["then_optimizer_options"]
    assert res["epochs"] == want["epochs"], (res["epochs"], want)
    assert res["resample_keep_optimizer"] == want["resample_keep_optimizer"]
    assert set(res["errors"]) <= {"u", "q"}


def solve(folder: str, cfg: dict[str, Any], argv: list[str]) -> int:
    """`fluxkern solve` of the tiny problem with the config and the command line; checks that
    the outcome is a result that reports what was asked for, or one line on stderr.

    Returns:
        The exit code.
    """
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        argv = list(argv)
        if cfg:
            path = os.path.join(tmp, "c.toml")
            with open(path, "w") as fh:
                fh.write(to_toml(cfg))
            assert tomllib.loads(to_toml(cfg)).keys() == cfg.keys()
            argv = ["--config", path, *argv]
        out = os.path.join(tmp, "run")
        problem = os.path.join(folder, "prop.py")
        full = ["solve", problem, "--no-progress", "--no-plots", "--out", out]
        code, stdout, stderr = run_cli(full + argv)
        if code == 0:
            assert "Traceback" not in stderr
            want = given_values(cfg, argv)
            if "--print-config" in argv:
                printed = tomllib.loads(stdout)
                assert printed["epochs"] == want["epochs"] and printed["seed"] == want["seed"]
            else:
                check_results(out, want)
        else:
            assert code in (2, 3), (code, stderr)
            lines = stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("fluxkern: "), stderr
            assert "Traceback" not in stderr
    return code


@SETTINGS
@given(configs(), command_lines())
def test_every_solve_is_a_result_or_one_line(folder, cfg, argv):
    solve(folder, cfg if toml_ints_fit(cfg) else {}, argv)


CLOSURE = ("lbfgs", "ssbfgs", "ssbroyden")


@st.composite
def valid_runs(draw) -> tuple[dict[str, Any], list[str]]:
    """Options that are all valid, each given in the config or on the command line."""
    optimizer = draw(st.sampled_from([o for o in SolveOptions.CHOICES["optimizer"] if o]))
    chosen: dict[str, Any] = {
        "epochs": draw(st.integers(0, 2)),
        "optimizer": optimizer,
        "seed": draw(st.sampled_from([0, 5, 2**63 - 1])),
        "dtype": draw(st.sampled_from(["float32", "float64"])),
        "dual": draw(st.sampled_from(["rmsprop", "pecann", "capu"])),
        "backend": draw(st.sampled_from(["torch", "cpu"])),
        "matmul_precision": draw(st.sampled_from(["ieee", "tf32"])),
    }
    if optimizer == "adam":
        chosen["lr"] = draw(st.sampled_from([1e-3, 1e-2]))
    elif optimizer in CLOSURE:
        chosen["lr"] = draw(st.sampled_from([0.5, 1.0]))
        chosen["optimizer_options"] = {"max_iter": draw(st.integers(1, 3))}
    if draw(st.booleans()):
        chosen["resample_every"] = draw(st.integers(1, 2))
        chosen["resample_keep_optimizer"] = draw(st.booleans())
    if draw(st.booleans()):
        chosen["then_optimizer"] = draw(st.sampled_from(["lbfgs", "adam", "ssbroyden"]))
        chosen["switch_epoch"] = draw(st.integers(0, 2))
    defaults = RULES[chosen["dual"]].DEFAULTS
    keys = draw(st.lists(st.sampled_from(sorted(defaults)), unique=True, max_size=2))
    chosen["dual_options"] = {k: defaults[k] * 0.5 for k in keys}
    cfg: dict[str, Any] = {}
    argv: list[str] = []
    for key, value in chosen.items():
        on_line = key in FLAGS and draw(st.booleans())
        if on_line:
            argv += [FLAGS[key], str(value)]
        elif key == "resample_keep_optimizer" and value and draw(st.booleans()):
            argv.append("--resample-keep-optimizer")
        else:
            cfg[key] = value
    return cfg, argv


@settings(SETTINGS, max_examples=50)
@given(valid_runs())
def test_valid_options_reach_the_run(folder, run):
    cfg, argv = run
    assert solve(folder, cfg, argv) == 0
