"""A problem that would train on the wrong thing is refused before the first epoch (issue 26).

Each case was a silently wrong or a crashing run before: output and input symbols that do not
match the declared names, terms on empty point sets, a misnamed or misshapen exact solution, an
evaluation grid of the wrong kind, option values of the wrong type or range, and terms() that
raise. Each is now one line (a ValueError, exit code 2 from the command line) raised when the
problem is declared or when the run is set up, never after training.
"""

from __future__ import annotations

import pytest
import torch

import fluxkern as fk
from fluxkern import cli, solver
from fluxkern.duals import make_rule
from fluxkern.optim.by_name import check_optimizer_options
from fluxkern.options import SolveOptions
from fluxkern.problems.base import EvalGrid, ProblemError

F64 = torch.float64
CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny(**kw) -> fk.problem:
    """u' = 1 on (0, 2) as an objective, u(0) = 0 as a constraint; 16 points."""
    x = fk.inputs("x")
    u = fk.outputs("u")
    args = {
        "name": "tiny",
        "inputs": "x",
        "outputs": "u",
        "domain": (0.0, 2.0),
        "points": {"p": fk.Sample("interior", "n"), "b": fk.Sample("left", 1)},
        "terms": lambda pts: [
            fk.Objective("pde", u.d(x) - 1.0, pts["p"]),
            fk.Constraint("bc", u, pts["b"]),
        ],
        "defaults": {"n": 16, "plots": False},
    }
    return fk.problem(**{**args, **kw})


def never_trains(problem: fk.problem, match: str, **options) -> None:
    """solve() raises a one-line ValueError matching `match` and runs no epoch (2 epochs
    unless `options` say otherwise; epochs=None: the problem's default)."""
    epochs: list[int] = []
    with pytest.raises(ValueError, match=match) as info:
        solver.solve(
            problem,
            callback=lambda e, m: epochs.append(e) or False,
            **{"epochs": 2, "progress": False, **options},
        )
    assert epochs == [] and "\n" not in str(info.value), str(info.value)


def cli_exit_2(capsys, tmp_path, source: str, match: str, *extra: str) -> None:
    """`fluxkern solve FILE.py` of the problem in `source`: exit code 2 and one line."""
    path = tmp_path / "prob.py"
    path.write_text(source)
    out = str(tmp_path / "run")
    code = cli.main(["solve", str(path), "--epochs", "1", "--no-progress", "--out", out, *extra])
    err = capsys.readouterr().err
    assert code == 2 and match in err, err
    assert len(err.strip().splitlines()) == 1, err


# ------------------------------------------------------------- 1. symbols and declared names


def test_outputs_declared_in_another_order_are_refused():
    x = fk.inputs("x")
    u, q = fk.outputs("u q")

    def terms(pts):
        return [
            fk.Objective("pde", q.d(x) - 1.0, pts["p"]),
            fk.Constraint("flux", q - u.d(x), pts["p"]),
        ]

    p = tiny(outputs="q u", terms=terms)
    match = (
        r"problem 'tiny': term 'pde' uses output 'q' as output 1 of fluxkern.outputs\('u q'\), "
        r"but the problem declares outputs 'q u' \(q is output 0\)"
    )
    with pytest.raises(ValueError, match=match):
        p.flux_terms(0, F64, CPU)
    never_trains(p, match)
    assert len(tiny(outputs="u q", terms=terms).flux_terms(0, F64, CPU)) == 2  # the same order


def test_an_undeclared_output_is_refused():
    x = fk.inputs("x")
    w = fk.outputs("w")
    p = tiny(terms=lambda pts: [fk.Objective("pde", w.d(x) - 1.0, pts["p"])])
    match = r"problem 'tiny': term 'pde' uses output 'w', which the problem does not declare"
    never_trains(p, match)


def test_inputs_declared_in_another_order_or_undeclared_are_refused():
    t, x = fk.inputs("t x")
    u = fk.outputs("u")
    p = tiny(
        inputs="x t",
        domain=fk.geometry.Rectangle([0.0, 0.0], [1.0, 1.0]),
        points={"p": fk.Sample("interior", 8)},
        terms=lambda pts: [fk.Objective("pde", u.d(t) + u.d(x), pts["p"])],
    )
    with pytest.raises(ValueError, match=r"term 'pde' uses input 't' as input 0 of "):
        p.flux_terms(0, F64, CPU)
    y = fk.inputs("y")
    q = tiny(terms=lambda pts: [fk.Objective("pde", u.d(y), pts["p"])])
    with pytest.raises(ValueError, match="uses input 'y', which the problem does not declare"):
        q.flux_terms(0, F64, CPU)


def test_fixed_blocks_are_checked_when_the_problem_is_declared():
    w = fk.outputs("w")
    with pytest.raises(ValueError, match="term 'c' uses output 'w', which the problem does not"):
        fk.problem(
            name="fixed", inputs="x", outputs="u", terms=[fk.Constraint("c", w, torch.rand(9, 1))]
        )


# ------------------------------------------------------------------- 2. empty point sets


def test_a_term_on_an_empty_sample_is_refused():
    p = tiny(defaults={"n": 0})
    never_trains(p, r"problem 'tiny': term 'pde' has no points \(point set 'p' is empty")


def test_a_term_on_a_selection_matching_nothing_is_refused():
    u = fk.outputs("u")
    p = tiny(terms=lambda pts: [fk.Constraint("right", u, pts["p"][pts["p"][:, 0] > 5.0])])
    never_trains(p, "problem 'tiny': term 'right' has no points")


def test_point_counts_must_be_whole_numbers():
    with pytest.raises(ValueError, match=r"defaults\['n'\] must be a non-negative integer"):
        tiny(defaults={"n": 10.5}).flux_terms(0, F64, CPU)
    with pytest.raises(ValueError, match=r"defaults\['n'\] must be a non-negative integer"):
        tiny(defaults={"n": True}).flux_terms(0, F64, CPU)


# ---------------------------------------------------------- 3. exact() and the evaluation grid


@pytest.mark.parametrize(
    "exact,match",
    [
        (lambda x: {"U": x[:, 0]}, r"exact\(\) gives 'U', which is not an output \(outputs: u\)"),
        (
            lambda x: {"u": x.repeat(1, 2)},
            r"exact\(\)\['u'\] has shape \[101, 2\], expected \[101\]",
        ),
        (lambda x: {"u": x[:3, 0]}, r"exact\(\)\['u'\] has shape \[3\], expected \[101\]"),
        (lambda x: {"u": 1.0}, r"exact\(\)\['u'\] is a float, not a tensor"),
        (lambda x: [x[:, 0]], r"exact\(\) must return a dict"),
        (lambda x: {"u": x[:, 0] / 0 * 0 + x[:, 5]}, r"exact\(\) raised IndexError"),
    ],
)
def test_exact_is_checked_before_training(exact, match):
    never_trains(tiny(exact=exact), "problem 'tiny': " + match)


def test_exact_must_give_every_declared_error_field():
    p = tiny(exact=lambda x: {"u": x[:, 0]}, error_fields="u")
    assert p.flux_terms(0, F64, CPU)
    x = fk.inputs("x")
    u, q = fk.outputs("u q")
    two = tiny(
        outputs="u q",
        terms=lambda pts: [fk.Objective("pde", q - u.d(x), pts["p"])],
        exact=lambda x: {"u": x[:, 0]},
        error_fields="u q",
    )
    never_trains(two, r"problem 'tiny': exact\(\) gives no 'q' \(an error field\)")


@pytest.mark.parametrize(
    "grid,match",
    [
        (lambda dt, dv: torch.zeros(5, 1), r"eval_grid\(\) must return an EvalGrid, got Tensor"),
        (
            lambda dt, dv: EvalGrid(torch.zeros(5, 2, dtype=dt), (5,)),
            r"the evaluation grid's points must be a \[G, 1\] tensor, got \[5, 2\]",
        ),
        (
            EvalGrid(torch.zeros(6, 1), (2, 2)),
            r"the evaluation grid's shape \(2, 2\) holds 4 points, not the 6 given",
        ),
        (torch.zeros(4, 3), r"the evaluation grid's points must be a \[G, 1\] tensor"),
    ],
)
def test_the_evaluation_grid_is_checked_before_training(grid, match):
    never_trains(tiny(eval_grid=grid), "problem 'tiny': " + match)


def test_a_good_problem_still_solves():
    res = solver.solve(tiny(exact=lambda x: {"u": x[:, 0]}), epochs=2, progress=False)
    assert res["epochs"] == 2 and set(res["errors"]) == {"u"}


# ------------------------------------------------------------- 4. option types and ranges


def test_defaults_of_the_wrong_type_are_refused_before_training():
    p = tiny(defaults={"n": 4, "epochs": True})
    never_trains(p, "epochs must be a non-negative integer; got True", epochs=None)
    never_trains(tiny(defaults={"n": 4, "dual_options": {"eta": -1.0}}), "dual rule 'rmsprop'")


@pytest.mark.parametrize(
    "options,match",
    [
        ({"epochs": True}, "epochs must be a non-negative integer; got True"),
        ({"checkpoint_every": True}, "checkpoint_every must be a positive integer; got True"),
        ({"seed": 10**23}, r"seed must be an integer in \[0, 2\*\*63 - 1\]; got 1"),
        ({"seed": 1e23}, r"seed must be an integer in \[0, 2\*\*63 - 1\]; got 1e\+23"),
        ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*63 - 1\]; got -1"),
        ({"seed": True}, r"seed must be an integer in \[0, 2\*\*63 - 1\]; got True"),
        ({"lr": True}, "lr must be a positive number; got True"),
        ({"lr": float("inf")}, "lr must be a positive number; got inf"),
        ({"plots": 1}, "plots must be true or false; got 1"),
        ({"progress": "no"}, "progress must be true or false; got 'no'"),
        ({"dual_options": [1.0]}, r"dual_options must be a dict; got \[1.0\]"),
    ],
)
def test_solve_options_of_the_wrong_type_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        SolveOptions(**options).validate()


@pytest.mark.parametrize(
    "optimizer,options,match",
    [
        ("lbfgs", {"max_iter": 0}, "max_iter must be an integer >= 1; got 0"),
        ("lbfgs", {"max_iter": 2.5}, "max_iter must be an integer >= 1; got 2.5"),
        ("lbfgs", {"history_size": 0}, "history_size must be an integer >= 1; got 0"),
        ("lbfgs", {"max_eval": True}, "max_eval must be None or an integer >= 1"),
        ("lbfgs", {"tolerance_grad": -1.0}, "tolerance_grad must be a number >= 0"),
        ("ssbfgs", {"self_scaling": 1}, "self_scaling must be true or false; got 1"),
        ("ssbroyden", {"initial_step": "one"}, 'initial_step must be "unit" or "secant"'),
        ("gauss_newton", {"damping": 0.0}, "damping must be None or > 0"),
        ("gauss_newton", {"max_rejects": -1}, "max_rejects must be an integer >= 0"),
        ("adam", {"betas": [0.9]}, r"betas must be two numbers in \[0, 1\)"),
        ("adam", {"betas": [0.9, 1.0]}, r"betas must be two numbers in \[0, 1\)"),
        ("adam", {"eps": float("nan")}, "eps must be a number >= 0; got nan"),
        ("adam", {"amsgrad": "yes"}, "amsgrad must be true or false"),
    ],
)
def test_optimizer_option_values_are_checked(optimizer, options, match):
    with pytest.raises(ValueError, match=f"optimizer_options: {optimizer} " + match):
        check_optimizer_options(optimizer, options)


def test_a_zero_max_iter_never_trains():
    never_trains(tiny(), "max_iter", optimizer_options={"max_iter": 0})
    never_trains(
        tiny(),
        "then_optimizer_options: adam weight_decay must be a number >= 0",
        then_optimizer="adam",
        switch_epoch=1,
        then_optimizer_options={"weight_decay": -1.0},
    )


@pytest.mark.parametrize(
    "rule,options,match",
    [
        ("rmsprop", {"eta": -1.0}, "option 'eta' must be >= 0; got -1.0"),
        ("rmsprop", {"beta": 1.0}, r"option 'beta' must be in \[0, 1\); got 1.0"),
        ("rmsprop", {"eps": 0.0}, "option 'eps' must be > 0; got 0.0"),
        ("rmsprop", {"mu": -0.5}, "option 'mu' must be >= 0; got -0.5"),
        ("pecann", {"mu_max": -1.0}, "option 'mu_max' must be >= 0; got -1.0"),
        ("pecann", {"mu": 2.0, "mu_max": 1.0}, "option 'mu_max' must be >= mu"),
        ("capu", {"zeta": -0.1}, r"option 'zeta' must be in \[0, 1\); got -0.1"),
        ("capu", {"omega": -1.0}, "option 'omega' must be >= 0; got -1.0"),
    ],
)
def test_dual_option_ranges_are_checked(rule, options, match):
    with pytest.raises(ValueError, match=f"dual rule '{rule}': " + match):
        make_rule(rule, **options)
    never_trains(tiny(), match, dual=rule, dual_options=options)


# ---------------------------------------------------------------- 5. terms() that raise


def test_terms_that_raise_name_the_problem():
    p = tiny(terms=lambda pts: [1 / 0])
    with pytest.raises(ProblemError, match=r"problem 'tiny': terms\(\) raised ZeroDivisionError"):
        p.flux_terms(0, F64, CPU)
    never_trains(p, "division by zero")
    u = fk.outputs("u")
    q = tiny(terms=lambda pts: [fk.Objective("f", u, pts["q"])])
    never_trains(q, "problem 'tiny': no point set 'q'; the problem declares 'p', 'b'")


def test_problem_errors_are_one_line_with_exit_code_2(capsys, tmp_path):
    head = "import fluxkern as fk\nx = fk.inputs('x')\nu = fk.outputs('u')\n"
    decl = (
        "problem = fk.problem(name='tiny', inputs='x', outputs={outs!r}, domain=(0.0, 1.0),\n"
        "    points={{'p': fk.Sample('interior', {n})}}, terms=terms{extra})\n"
    )
    cases = [
        ("def terms(pts):\n    return [1 / 0]\n", {}, "terms() raised ZeroDivisionError"),
        (
            "def terms(pts):\n    return [fk.Objective('f', u, pts['interior'])]\n",
            {},
            "problem 'tiny': no point set 'interior'; the problem declares 'p'",
        ),
        (
            "def terms(pts):\n    return [fk.Objective('f', u, pts['p'])]\n",
            {"n": 0},
            "problem 'tiny': term 'f' has no points (point set 'p' is empty",
        ),
        (
            "def terms(pts):\n    return [fk.Objective('f', u, pts['p'])]\n",
            {"outs": "v"},
            "problem 'tiny': term 'f' uses output 'u', which the problem does not declare",
        ),
        (
            "def terms(pts):\n    return [fk.Objective('f', u, pts['p'])]\n",
            {"extra": ", exact=lambda x: {'u': x}, eval_grid=lambda d, v: 3"},
            "problem 'tiny': eval_grid() must return an EvalGrid, got int",
        ),
        (
            "def terms(pts):\n    return [fk.Objective('f', u, pts['p'])]\n",
            {"extra": ", exact=lambda x: 3"},
            "problem 'tiny': exact() must return a dict",
        ),
    ]
    for body, kw, match in cases:
        fmt = {"outs": "u", "n": 8, "extra": "", **kw}
        cli_exit_2(capsys, tmp_path, head + body + decl.format(**fmt), match)
    good = head + cases[2][0] + decl.format(outs="u", n=8, extra="")
    cli_exit_2(capsys, tmp_path, good, "seed must be an integer", "--seed", str(10**23))
