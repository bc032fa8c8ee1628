"""bench/fidelity.py: a smoke run of fluxkern.solve against plain PyTorch at equal epochs.

Not a fidelity result (5 epochs): it checks that the script runs end to end on poisson, that the
two implementations start from the same state (errors at epoch 0 equal), that runs made in
separate invocations merge into one summary, and that an unknown problem is a clear error.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import fidelity  # noqa: E402


def _trajectories(payload: dict) -> dict[tuple[str, int], list[dict]]:
    return {(r["implementation"], r["seed"]): r["trajectory"] for r in payload["runs"]}


def test_poisson_smoke_run_separate_invocations_merge(tmp_path, capsys):
    threads = torch.get_num_threads()
    common = ["poisson", "--seeds", "0", "1", "--epochs", "5", "--every", "5"]
    common += ["--out", str(tmp_path)]
    # the two implementations as separate invocations (as two processes would run them)
    assert fidelity.main([*common, "--which", "fluxkern"]) == 0
    assert fidelity.main([*common, "--which", "plain"]) == 0
    assert torch.get_num_threads() == threads  # main restores the thread count

    payload = json.loads((tmp_path / "poisson.json").read_text())
    runs = _trajectories(payload)
    assert set(runs) == {(i, s) for i in ("fluxkern", "plain") for s in (0, 1)}
    for r in payload["runs"]:
        assert r["complete"] and r["stopped"] is None
        check = r["initial_check"]
        assert check["weights_identical"] and check["rel_diff"] <= 1e-12
    for seed in (0, 1):
        fk0, pl0 = runs[("fluxkern", seed)][0], runs[("plain", seed)][0]
        assert fk0["epoch"] == pl0["epoch"] == 0
        assert set(fk0["errors"]) == {"u", "q1", "q2"} == set(pl0["errors"])
        for k, v in fk0["errors"].items():
            assert abs(v - pl0["errors"][k]) <= 1e-10 * max(1.0, abs(v)), k
        assert [e["epoch"] for e in runs[("fluxkern", seed)]] == [0, 5]
        assert [e["epoch"] for e in runs[("plain", seed)]] == [0, 5]
        assert runs[("fluxkern", seed)][-1]["wall_s"] > 0

    md = (tmp_path / "poisson.md").read_text()
    assert "## u" in md and "within seed spread" in md
    assert (tmp_path / "poisson.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "initial loss: fluxkern.solve" in out and "epoch 5/5" in out

    # --merge alone rebuilds the summary from the part files
    (tmp_path / "poisson.md").unlink()
    assert fidelity.main(["poisson", "--merge", "--out", str(tmp_path)]) == 0
    assert "## q2" in (tmp_path / "poisson.md").read_text()


def test_unknown_problem_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as e:
        fidelity.main(["no_such_problem", "--epochs", "1"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown problem 'no_such_problem'" in err and "convection" in err


def test_verdict_and_matrix_norm():
    assert fidelity.verdict([1.0, 2.0], [1.5, 3.0]) == "within seed spread"
    assert fidelity.verdict([1.0, 2.0], [3.0, 4.0]) == "no: fluxkern lower"
    assert fidelity.verdict([3.0], [1.0]) == "no: plain lower"
    assert fidelity.verdict([1.0], [1.0 + 1e-15]) == "within seed spread"
    assert fidelity.verdict([], [1.0]) == "-"
    exact = torch.ones(4, 4, dtype=torch.float64)
    pred = exact + torch.eye(4, dtype=torch.float64) * 0.1
    # ||0.1 I||_2 / ||ones||_2 = 0.1 / 4; the Frobenius ratio would be 0.2 / 4
    val = fidelity.matrix_relative_error(pred.reshape(-1), exact.reshape(-1), (4, 4))
    assert val == pytest.approx(0.025, rel=1e-12)
