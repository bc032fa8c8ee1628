"""The plots a run writes: unknowns.png for identified unknowns, slices of grids over 3+ inputs,
and a plot that cannot be drawn warning instead of costing the results."""

import os

import pytest

from fluxkern import problems, solver


def load(name: str) -> problems.Problem:
    return problems.resolve(os.path.join("examples", name + ".py"))


def test_plots_include_the_identified_unknowns(tmp_path):
    out = str(tmp_path / "run")
    p = load("inverse_heat")
    pts = {"interior": 200, "walls": 40, "initial": 40}
    solver.solve(p, epochs=2, out=out, progress=False, points=pts)
    path = os.path.join(out, "unknowns.png")
    assert os.path.getsize(path) > 1000
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plots_without_unknowns_write_no_unknowns_panel(tmp_path):
    out = str(tmp_path / "run")
    solver.solve("poisson", epochs=1, out=out, progress=False, points={"interior": 64})
    assert os.path.exists(os.path.join(out, "history.png"))
    assert not os.path.exists(os.path.join(out, "unknowns.png"))


def test_plots_of_a_three_input_grid_show_its_last_slice(tmp_path):
    # inverse_heat's evaluation grid is (x, y, t): solution.png shows the final time
    import matplotlib.image

    out = str(tmp_path / "run")
    p = load("inverse_heat")
    solver.solve(p, epochs=1, out=out, progress=False, points={"interior": 200})
    for name in ("solution.png", "error.png"):
        img = matplotlib.image.imread(os.path.join(out, name))
        assert img.ndim == 3 and img.shape[0] > 100


def test_a_plot_that_cannot_be_drawn_warns_and_keeps_the_results(tmp_path, monkeypatch):
    from fluxkern import plots

    def broken(*args, **kwargs):
        raise ValueError("no such shape")

    monkeypatch.setattr(plots, "write_all", broken)
    out = str(tmp_path / "run")
    with pytest.warns(RuntimeWarning, match="plots not drawn .ValueError: no such shape"):
        solver.solve("poisson", epochs=1, out=out, progress=False, points={"interior": 64})
    assert os.path.exists(os.path.join(out, "results.json"))
