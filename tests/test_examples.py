"""examples/*.py, the problem files of the PDEs users bring (issue 27): each loads as a problem
file, its exact (or reference) solution satisfies its own blocks, a few epochs train, and the
users benchmark's helpers (bench/users.py, users_common.py, users_deepxde.py's exact solutions)
work."""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import sys

import numpy as np
import pytest
import torch

from fluxkern import problems, solver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import users  # noqa: E402  (bench/users.py)
import users_common as uc  # noqa: E402
import users_deepxde as udx  # noqa: E402

F64 = torch.float64
CPU = torch.device("cpu")
NAMES = users.PROBLEMS
CLOSED_FORM = [n for n in NAMES if n != "allen_cahn"]  # allen_cahn: a numerical reference


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def load(name: str) -> problems.Problem:
    return problems.resolve(os.path.join("examples", name + ".py"))


@functools.cache
def _example_module(name: str):
    """The example file as a module (one per test session: allen_cahn's reference, cached in
    its module, is computed once)."""
    spec = importlib.util.spec_from_file_location(
        f"_ex_{name}", os.path.join(ROOT, "examples", name + ".py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # the examples are resolved as "examples/NAME.py", as users type it


def test_every_example_loads_as_a_problem_file():
    assert sorted(NAMES) == sorted(
        f[:-3]
        for f in os.listdir(os.path.join(ROOT, "examples"))
        # the inverse examples and their data script: tests/test_inverse_examples.py
        if f.endswith(".py") and not f.startswith("inverse_")
    )
    for name in NAMES:
        p = load(name)
        assert isinstance(p, problems.Problem) and p.name == name and p.error_fields
        assert "u" in p.error_fields


def _fields_and_jacobian(p: problems.Problem, x: torch.Tensor, h: float = 1e-5):
    """y [N, m] of the exact solution and J [N, m, d] by central differences (some exact
    functions use autograd inside, so J is not taken by autograd)."""
    y = torch.stack([p.exact(x)[o] for o in p.output_names], 1)
    cols = []
    for j in range(x.shape[1]):
        e = torch.zeros_like(x)
        e[:, j] = h
        plus = torch.stack([p.exact(x + e)[o] for o in p.output_names], 1)
        minus = torch.stack([p.exact(x - e)[o] for o in p.output_names], 1)
        cols.append((plus - minus) / (2 * h))
    return y, torch.stack(cols, 2)


# Central differences with h = 1e-5 in float64: truncation h^2/6 |d^3 y| <= 1e-10 / 6 * (4 pi)^3
# * |y| ~ 3e-8 |y| for the fastest mode here (4 pi), rounding 1e-16 |y| / h ~ 1e-11 |y|; the
# residuals multiply these by coefficients up to 6 pi^2 (poisson3d's source). So 1e-5 of the
# residual's scale (1 + the largest |y|, |J| and data value) is met by a correct solution with a
# wide margin (measured 2026-12-07: at most 4.3e-9 of the scale), and a wrong sign, coefficient
# or condition is O(1) of it.
RESIDUAL_TOL = 1e-5


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_the_exact_solution_satisfies_every_block(name):
    p = load(name)
    worst = {}
    for block in p.flux_terms(0, F64, CPU):
        x = block.points
        y, jac = _fields_and_jacobian(p, x)
        e = torch.stack([ex.evaluate(block.data, y, jac, x) for ex in block.exprs], 1)
        r = e[: block.n] - e[block.n :] if block.paired else e
        data = max((float(v.abs().max()) for v in block.data.values()), default=0.0)
        scale = 1.0 + max(float(y.abs().max()), float(jac.abs().max()), data)
        worst[block.name] = float(r.abs().max()) / scale
    assert max(worst.values()) < RESIDUAL_TOL, worst


def test_allen_cahn_reference_satisfies_the_pde():
    """The ETDRK4 reference: u_t - d u_xx - 5 (u - u^3), u_xx spectral and u_t by central
    differences between its steps (dt 2e-4, outputs every step, 0.01 <= t <= 0.2). Tolerance
    1e-4 of the largest term (5 |u - u^3| ~ 1.9): measured 2026-12-07 4e-6 of it; before
    t = 0.01 the kink of the periodic u0 at x = +-1 (high modes decaying at d k^2 ~ 1e3 per unit
    time) makes the check's own time difference inexact (5e-4 at t = 2e-4), not the solver. A
    wrong coefficient gives O(1)."""
    p = load("allen_cahn")
    spec = _example_module("allen_cahn")
    xs, ts, u = spec.etdrk4(n_modes=2048, dt=2e-4, t_end=0.2, n_out=1001)
    n = len(xs)
    k = np.pi * np.fft.fftfreq(n, d=1.0 / n)
    u_xx = np.fft.ifft(-(k**2) * np.fft.fft(u, axis=1), axis=1).real
    u_t = (u[2:] - u[:-2]) / (2 * (ts[1] - ts[0]))
    mid = u[1:-1]
    reaction = 5 * (mid - mid**3)
    r = (u_t - spec.D * u_xx[1:-1] - reaction)[ts[1:-1] >= 0.01]
    scale = max(np.abs(reaction).max(), spec.D * np.abs(u_xx).max())
    assert np.abs(r).max() / scale < 1e-4
    # the evaluation grid reads the full reference exactly at its output times
    g = p.eval_grid(F64, CPU)
    xr, tr, ur = spec.reference_solution()
    ex = spec.exact(g.points)["u"].reshape(g.shape)  # [x, t]
    assert torch.allclose(ex, torch.as_tensor(ur[:, ::8].T), atol=1e-13)
    # off the grid the interpolation is continuous with it
    off = g.points[:5] + torch.tensor([1e-4, 1e-4], dtype=F64)
    assert (spec.exact(off)["u"] - spec.exact(g.points[:5])["u"]).abs().max() < 0.05


@pytest.mark.parametrize("name", NAMES)
def test_a_few_epochs_train(name):
    res = solver.solve(load(name), epochs=2, progress=False, plots=False)
    assert res["epochs"] == 2 and math.isfinite(res["final_loss"])
    assert set(res["errors"]) == set(load(name).error_fields)


# ---------------------------------------------------------------------------- bench helpers
def test_deepxde_side_exact_solutions_match_the_examples():
    """users_deepxde.py writes each problem again for DeepXDE (plain torch, no fluxkern): its
    exact solutions and sources agree with the examples'."""
    g = torch.Generator().manual_seed(0)

    def pts(lo, hi, n=64):
        lo, hi = torch.tensor(lo, dtype=F64), torch.tensor(hi, dtype=F64)
        return lo + (hi - lo) * torch.rand(n, len(lo), generator=g, dtype=F64)

    def same(a, b):
        assert torch.allclose(a.reshape(-1), b.reshape(-1), rtol=1e-12, atol=1e-12)

    x = pts([0, 0], [1, 1])
    same(udx.wave_exact(x), load("wave").exact(x)["u"])
    same(udx.kg_exact(x), load("klein_gordon").exact(x)["u"])
    same(udx.kg_source(x), _example_module("klein_gordon").source(x))
    x = pts([-8, 0], [8, 4])
    same(udx.kdv_exact(x), load("kdv").exact(x)["u"])
    same(udx.kdv_exact(x, 1), load("kdv").exact(x)["v"])
    x = pts([0, 0, 0], [1, 1, 1])
    same(udx.heat_exact(x), load("heat2d").exact(x)["u"])
    same(udx.heat_source(x), _example_module("heat2d").source(x))
    same(udx.heat_k(x)[0], _example_module("heat2d").conductivity(x))
    same(udx.poisson3d_exact(x), load("poisson3d").exact(x)["u"])
    x = pts([-0.5, -0.5], [1, 1.5])
    ex = load("kovasznay").exact(x)
    for got, f in zip(udx.kov_exact(x), ("u", "v", "p"), strict=True):
        same(got, ex[f])
    x = pts([0, 0, 0], [2 * math.pi, 2 * math.pi, 1])
    ex = load("taylor_green").exact(x)
    for got, f in zip(udx.tg_exact(x), ("u", "v"), strict=True):
        same(got, ex[f])
    x = pts([-1, 0], [1, 1])
    same(udx.ac_initial(x), _example_module("allen_cahn").initial(x[:, 0]))
    same(udx.vf_initial(x), _example_module("viscous_front").initial(x[:, 0]))
    assert udx.VF_NU == _example_module("viscous_front").NU
    # the same numbers of points as the examples draw
    for name, (nd, nb, ni) in udx.POINTS.items():
        sizes = {k: v.shape[0] for k, v in _point_counts(load(name)).items()}
        assert sizes["interior"] == nd, name
        assert sizes.get("boundary", 0) == nb and sizes.get("initial", 0) == ni, (name, sizes)


def _point_counts(p):
    """Interior, boundary (faces, both sides of periodic pairs) and initial point counts."""
    pts = p.points(0, F64, CPU)
    out = {"interior": pts["interior"]}
    bnd = [v for k, v in pts.items() if k not in ("interior", "initial", "outflow")]
    flat = [t for v in bnd for t in (v if isinstance(v, tuple) else (v,))]
    if flat:
        out["boundary"] = torch.cat(flat)
    if "initial" in pts:
        out["initial"] = pts["initial"]
    return out


def test_trace_checks_before_each_mark_and_stops_at_the_budget(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(uc.time, "perf_counter", lambda: now[0])
    calls = []
    tr = uc.Trace(100.0, 30.0, lambda: calls.append(now[0]) or {"u": 1.0 / (1 + now[0])})
    stops = []
    for step in range(1, 200):
        now[0] += 7.0
        stops.append(tr.step(step, "lbfgs"))
        if stops[-1]:
            break
    assert stops[-1] and not any(stops[:-1]) and tr.times[-1] >= 100
    # a check at the last step before 60 s (56 s: the next, at 63 s, crosses the mark)
    assert 56.0 in tr.times and uc.error_at(tr.as_dict(), 60.0)["time_s"] == 56.0
    assert uc.error_at(tr.as_dict(), None)["time_s"] == tr.times[-1]
    assert uc.error_at(tr.as_dict(), -1.0) is None
    assert uc.headline({"u": 0.1, "v": 0.3}) == 0.3


def test_summary_verdict_and_markdown(tmp_path):
    def trace(errs):
        return {
            "times_s": [10.0, 59.0, 299.0, 301.0],
            "errors": [{"u": e} for e in errs],
            "steps": [1, 2, 3, 4],
            "phases": ["a"] * 4,
            "budget_s": 300.0,
        }

    run = {
        "budget_s": 300.0,
        "fluxkern": trace([1, 0.1, 1e-3, 9e-4]),
        "deepxde": trace([1, 0.2, 1e-2, 1e-2]),
    }
    s = users.summarise(run)
    assert s["fluxkern"]["60s"]["error"] == 0.1 and s["fluxkern"]["300s"]["error"] == 1e-3
    assert s["fluxkern"]["end"]["time_s"] == 301.0
    v = users.verdict(s)
    assert v["at_60s"] and v["at_300s"] and math.isclose(v["ratio_300s"], 0.1)
    run["deepxde"] = {"error": "boom"}
    assert users.verdict(users.summarise(run))["at_300s"] is None
    ev = tmp_path / "eval.npz"
    meta = users.write_eval("wave", str(ev))
    back = uc.load_eval(str(ev))
    assert back["error_fields"] == ["u"] and back["points"].shape == (101 * 101, 2)
    assert meta["width"] == back["width"] == 32 and back["exact"]["u"].shape == (101 * 101,)
    payload = {
        "date": "2026-12-07",
        "note": "",
        "machine": {
            "cpu": "cpu",
            "cores": 2,
            "python": "3",
            "fluxkern": "0",
            "torch": "t",
            "commit": "abc",
            "modified": [],
        },
        "runs": {
            "300s": {
                "command": "c",
                "problems": {
                    "wave": {
                        **run,
                        "meta": meta,
                        "summary": s,
                        "verdict": v,
                        "load_average_before": 1,
                        "load_average_after": 2,
                    }
                },
            }
        },
    }
    text = users.markdown(payload)
    assert "| wave | 1.00e-01 (59 s) | 2.00e-01 (59 s) |" in text and "met (x0.1)" in text
    json.dumps(payload)
    # a short run: no check before half the budget; the diagnostics still render
    short = {"budget_s": 5.0, "fluxkern": {**trace([1, 0.5, 0.4, 0.3]), "times_s": [3, 4, 5, 6],
             "epochs": 4, "cpu_s": [1, 2, 3, 4], "optimizer_class": "LBFGS",
             "between_points": {"pde": {"train": 1.0, "fresh": 2.0, "fresh/train": 2.0}}},
             "deepxde": trace([1, 1, 1, 1])}  # fmt: skip
    short |= {"meta": meta, "summary": users.summarise(short), "load_average_before": 1,
              "load_average_after": 1}  # fmt: skip
    short["verdict"] = users.verdict(short["summary"])
    payload["runs"] = {"5s": {"command": "q", "problems": {"wave": short}}}
    text = users.markdown(payload)
    assert (
        "| wave | LBFGS | 4 |" in text
        and "pde: 1.0e+00 at the points, 2.0e+00 between (x2)" in text
    )
