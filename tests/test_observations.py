"""Observations (fluxkern.observe, read_observations) and the constraint tolerance for noisy
data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fluxkern as fk
from fluxkern.blocks import Constraint, Objective

x, t = fk.inputs("x t")
u, q = fk.outputs("u q")


def test_observe_builds_a_constraint_or_a_penalty_objective():
    pts = np.random.default_rng(0).uniform(size=(6, 2))
    vals = np.arange(6.0)
    c = fk.observe("obs", pts, {u: vals, u.d(x): 2 * vals}, tolerance=0.1)
    assert isinstance(c, Constraint) and c.n_res == 2 and c.tolerance == 0.1
    assert torch.equal(c.data["_observed_1"], torch.as_tensor(2 * vals))
    o = fk.observe("obs", pts, {u: vals}, penalty=3.0)
    assert isinstance(o, Objective) and o.weight == 3.0
    # the residual is expr - value: zero for a model that returns the values
    model = fk.MLP(2, 2, 4, 1, dtype=torch.float64)
    bound = c.bind(2, 2, torch.float64, torch.device("cpu"))
    y = torch.stack([torch.as_tensor(vals), torch.zeros(6, dtype=torch.float64)], 1)
    jac = torch.zeros(6, 2, 2, dtype=torch.float64)
    jac[:, 0, 0] = torch.as_tensor(2 * vals)
    assert bound.residuals_torch(y, jac).abs().max() == 0
    del model


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"values": {}}, "at least one"),
        ({"values": {"u": [1.0]}}, "keys must be expressions"),
        ({"values": {u: [1.0, 2.0]}}, "2 values of u for 1 points"),
        ({"values": {u: [1.0]}, "penalty": 1.0, "tolerance": 0.1}, "not both"),
        ({"values": {u: [1.0]}, "tolerance": -1.0}, "tolerance must be"),
    ],
)
def test_observe_errors_are_one_line(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        fk.observe("obs", [[0.5, 0.5]], **kwargs)
    assert "\n" not in str(info.value)


def test_read_observations_csv_and_npz(tmp_path):
    rng = np.random.default_rng(1)
    pts, vals = rng.uniform(size=(5, 2)), rng.normal(size=5)
    csv_path = tmp_path / "s.csv"
    rows = "\n".join(f"{a:.17g},{b:.17g},{v:.17g}" for (a, b), v in zip(pts, vals, strict=True))
    csv_path.write_text("# sensors\nx,t,u\n" + rows + "\n")
    p1, m1 = fk.read_observations(csv_path, "x t")
    assert torch.equal(p1, torch.as_tensor(pts)) and torch.equal(m1["u"], torch.as_tensor(vals))
    npz_path = tmp_path / "s.npz"
    np.savez(npz_path, points=pts, u=vals)
    p2, m2 = fk.read_observations(npz_path, ["x", "t"])
    assert torch.equal(p2, p1) and torch.equal(m2["u"], m1["u"])
    np.savez(tmp_path / "c.npz", t=pts[:, 1], x=pts[:, 0], u=vals)
    p3, _ = fk.read_observations(tmp_path / "c.npz", "x t")
    assert torch.equal(p3, p1)


def test_read_observations_errors_are_one_line(tmp_path):
    (tmp_path / "a.csv").write_text("x,u\n1,2\n3\n")
    (tmp_path / "b.csv").write_text("x,u\n1,oops\n")
    (tmp_path / "c.txt").write_text("x\n1\n")
    cases = [
        (tmp_path / "none.csv", "no file"),
        (tmp_path / "a.csv", "rows do not all have 2 values"),
        (tmp_path / "b.csv", "not a number"),
        (tmp_path / "c.txt", "give a .csv or .npz"),
    ]
    for path, match in cases:
        with pytest.raises(ValueError, match=match) as info:
            fk.read_observations(path, "x")
        assert "\n" not in str(info.value)
    (tmp_path / "d.csv").write_text("y,u\n1,2\n")
    with pytest.raises(ValueError, match="no column 'x'"):
        fk.read_observations(tmp_path / "d.csv", "x")


@pytest.mark.parametrize("form", ["squared", "signed"])
def test_tolerance_stops_the_multiplier_update_within_it(form):
    """Points fitted to within the tolerance keep their multipliers; the others grow."""
    pts = torch.linspace(0, 1, 8, dtype=torch.float64)[:, None].repeat(1, 2)
    model = fk.MLP(2, 1, 4, 1, dtype=torch.float64)
    with torch.no_grad():
        pred = model(pts)[:, 0]
    off = torch.tensor([0.01, -0.01, 0.3, -0.3] * 2, dtype=torch.float64)
    c = fk.observe("obs", pts, {u: pred + off}, tolerance=0.1, form=form)
    al = fk.AugmentedLagrangian(model, [c], dual="pecann")
    al.update_multipliers()
    lam = al.multipliers["obs"][:, 0]
    inside, outside = off.abs() < 0.1, off.abs() > 0.1
    assert torch.all(lam[inside] == 0) and torch.all(lam[outside] != 0)
    exact = fk.AugmentedLagrangian(model, [fk.observe("e", pts, {u: pred + off}, form=form)],
                                   dual="pecann")  # fmt: skip
    exact.update_multipliers()
    assert torch.all(exact.multipliers["e"][:, 0] != 0)


def test_global_tolerance_is_on_the_rms_misfit():
    c = Constraint("g", u, torch.zeros(4, 2), multiplier="global", tolerance=0.5)
    r = torch.tensor([[0.4], [0.4], [0.4], [0.4]])
    assert torch.all(c.within_tolerance((r * r).mean(0)) == 0)
    assert torch.all(c.within_tolerance(torch.tensor([1.0])) == 0.25)
