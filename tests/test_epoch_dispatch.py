"""Dispatches and host syncs per training epoch stay within their budgets (CPU-runnable).

On a GPU every dispatched ATen op is a kernel launch and every read of a tensor's value on the
host (.item(), float(t), bool(t)) waits for the device; at the benchmark problems' sizes that,
not the arithmetic, sets the epoch's time (bench/results/gpu/README.md: 33,872 ops per poisson
epoch at 11-14 us each on an H200, before the L-BFGS direction moved to the host).
bench/epoch_dispatch.py counts them on the CPU with a TorchDispatchMode while `fluxkern.solve`
runs its default trainer, so a regression shows up without a GPU. A failure here means a slower
GPU epoch: find the new ops or syncs with `python bench/epoch_dispatch.py --problems <name>
--where` before raising a budget.

The budgets are the counts measured for epoch 6 (after 5 warm-up epochs; no unseen-point check
in it) on 2026-12-07 (Intel Xeon, 2 cores, Python 3.11.7, torch 2.13.0+cpu, one thread;
bench/results/epoch-dispatch-2026-12-07.md) plus 10%, scaled up where the epoch made more loss
evaluations than then (another CPU can round differently and end a line search elsewhere). The
closure (the loss and gradient evaluation, ~21-26 calls an epoch) must stay free of syncs.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import epoch_dispatch  # noqa: E402

MARGIN = 1.10

# problem: (optimizer, loss evaluations, ATen ops, host syncs) of epoch 6, measured as above
MEASURED = {
    "poisson": ("LBFGS", 22, 1802, 167),  # L-BFGS, torch's curvature test
    "helmholtz": ("SSBroyden", 26, 3127, 413),  # the dense quasi-Newton optimizer
    "convection_diffusion": ("LBFGS", 25, 2217, 249),  # L-BFGS, the scale-free tests
}
# Options of the counted run beyond the problem's defaults: convection_diffusion's default moved
# to ssbroyden (helmholtz's case) after these counts; its L-BFGS run stays counted
OPTIONS = {"convection_diffusion": {"optimizer": "lbfgs"}}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(MEASURED))
def test_one_epoch_stays_within_its_dispatch_and_sync_budget(name):
    optimizer, evals, ops, syncs = MEASURED[name]
    res = epoch_dispatch.count_problem(name, warm=5, epochs=1, **OPTIONS.get(name, {}))
    assert res["optimizer"] == optimizer  # the budget is that optimizer's
    (epoch,) = res["epochs"]
    assert epoch["epoch"] == 6
    assert 1 <= epoch["evals"] <= 26, epoch  # max_eval 25 and the step's first evaluation
    assert epoch["fluxkern"] >= 1, epoch  # the fused op ran (else these are the twin's counts)
    assert epoch["closure_syncs"] == 0, f"{name}: the loss evaluation reads tensors: {epoch}"
    scale = MARGIN * max(1.0, epoch["evals"] / evals)
    assert epoch["ops"] <= int(scale * ops), f"{name}: more ATen ops per epoch: {epoch}"
    assert epoch["syncs"] <= int(scale * syncs), f"{name}: more host syncs per epoch: {epoch}"


def test_the_counter_counts_host_reads_as_syncs_and_views_as_no_launch():
    x = torch.randn(4, 3, dtype=torch.float64)
    with epoch_dispatch.Counting() as c:
        y = x @ x.T  # a view and a matrix product
        float(y.sum())
        bool(y.max() > 0)
        y.tolist()  # no dispatch on the CPU: counted by the TorchFunctionMode
    assert c.by_name["aten._local_scalar_dense"] == 2 and c.by_name["Tensor.tolist"] == 1
    assert c.syncs == 3, dict(c.by_name)
    assert c.launching < c.ops and c.fluxkern == 0, dict(c.by_name)


def test_the_counter_counts_copies_between_devices():
    """On a GPU run a copy between the host and the device is a transfer the stream waits for;
    the meta device stands in for the other device here."""
    x = torch.randn(4, dtype=torch.float64)
    with epoch_dispatch.Counting() as c:
        x.to("meta")  # aten._to_copy to another device
        x.clone()  # a copy on the same device: not a transfer
        torch.empty(4, device="meta").copy_(x)  # copy_ from another device
    assert c.transfers == 2, dict(c.by_name)
