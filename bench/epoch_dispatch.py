"""ATen dispatches and host syncs per training epoch of the benchmark problems, counted on the CPU.

On a GPU every dispatched op is a kernel launch (several microseconds each, plus Python) and
every read of a tensor's value on the host (``.item()``, ``float(t)``, ``bool(t)``) waits for
the device, so at the benchmark problems' sizes an epoch's time follows these counts more than
its FLOPs. This runs each problem as ``fluxkern.solve`` / ``fluxkern solve`` does with the
problem's defaults (flux form, float64, its network, points, augmented Lagrangian and optimizer:
its own or the "auto" choice; the unseen-point check every 10 epochs and the automatic redraws'
checks every 20; no output folder, no progress line, which dispatches nothing), warms up, and
counts each epoch after that (its step and the run's callbacks) with a
``torch.utils._python_dispatch.TorchDispatchMode``:

- ops: every ATen op that reaches the dispatcher's Python key (forward and backward, views and
  in-place ops included; composite ops are seen as what they decompose into). A fused fluxkern
  op counts as one; what its kernel does inside is not seen.
- launching: the ops less views and metadata ops (VIEW_OPS) and the profiler's markers, which
  launch no kernel on a GPU (an estimate of the launches: a fused op may launch several, a
  reduction two).
- fluxkern: the ``torch.ops.fluxkern.*`` ops among them.
- host data: ``aten.lift_fresh``, a tensor made from host values (``torch.tensor([...])``, a
  Python number stored into a tensor): on a GPU a host -> device copy, which torch waits for
  unless it is non_blocking from pinned memory; not among the syncs, as it is free where the
  tensor lives on the CPU (fluxkern.optim.LBFGS's pair history).
- syncs: ops that read a tensor's value on the host, i.e. that make the host wait for a GPU:
  ``aten._local_scalar_dense`` (``.item()``, ``float(t)``, ``int(t)``, ``bool(t)``),
  ``aten.is_nonzero``, ``aten.nonzero``, ``aten.equal``, and the calls of ``Tensor.tolist``,
  ``Tensor.numpy`` and ``Tensor.cpu`` (seen by a TorchFunctionMode: on the CPU they dispatch
  nothing). Other copies between the host and the device (``.to(device)``,
  ``torch.tensor(...)`` on a device, fluxkern.optim.LBFGS's pair history, which lives on the
  CPU also for GPU parameters) are syncs on a GPU too but cannot be told from same-device
  copies on the CPU, so they are not counted here.
- evals: closure calls (loss + gradient evaluations); ops and syncs inside them are counted
  apart ("per eval" columns).

The counts are the device's too (the same Python code runs there); the times printed are the
CPU's with the counting's overhead, not a measurement. tests/test_epoch_dispatch.py holds one
epoch of three problems to these counts.

Usage: python bench/epoch_dispatch.py [--problems poisson ...] [--warm 5] [--epochs 5]
                                      [--where] [--optimizer NAME] [--json path]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
import traceback
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import fluxkern as fk  # noqa: E402
from fluxkern.training import Callback  # noqa: E402

PROBLEMS = [
    "poisson",
    "helmholtz",
    "composite_heat",
    "cavity",
    "stokes",
    "convection",
    "convection_diffusion",
]

#: Ops that read a tensor's value on the host: a device -> host sync on a GPU.
SYNC_OPS = frozenset({"_local_scalar_dense", "is_nonzero", "nonzero", "equal"})
#: ATen ops that only make views or read metadata: no kernel launch on a GPU.
VIEW_OPS = frozenset(
    {
        "_reshape_alias",
        "_unsafe_view",
        "alias",
        "as_strided",
        "detach",
        "diagonal",
        "expand",
        "narrow",
        "permute",
        "select",
        "slice",
        "split",
        "split_with_sizes",
        "squeeze",
        "t",
        "transpose",
        "unbind",
        "unflatten",
        "unsqueeze",
        "view",
    }
)
#: Tensor methods that copy a tensor's values to the host (no dispatch on the CPU).
HOST_READS = frozenset({"tolist", "numpy", "cpu"})

_PACKAGE = os.path.dirname(os.path.abspath(fk.__file__)) + os.sep
_LINE_SEARCH = os.path.join("torch", "optim", "lbfgs.py")  # torch's strong-Wolfe search


def _op_name(func: Any) -> tuple[str, str]:
    """(namespace, name) of an OpOverload, e.g. ("aten", "mm")."""
    packet = getattr(func, "overloadpacket", func)
    return getattr(func, "namespace", "?"), getattr(packet, "__name__", str(func))


def _caller() -> str:
    """Where the current op was called from: the innermost frame in the fluxkern package or
    in torch's line search, as "optim/lbfgs.py:113 _directional_evaluate", else "?"."""
    for fr in reversed(traceback.extract_stack()):
        path = os.path.abspath(fr.filename)
        if path.startswith(_PACKAGE):
            return f"{path[len(_PACKAGE) :]}:{fr.lineno} {fr.name}"
        if path.endswith(_LINE_SEARCH):
            return f"{_LINE_SEARCH}:{fr.lineno} {fr.name}"
    return "?"


def _crosses_devices(name: str, args: tuple, kwargs: dict | None) -> bool:
    """Whether an aten._to_copy (to kwargs' device) or copy_ (src args[1] into args[0])
    moves data between devices."""
    kwargs = kwargs or {}
    if name == "_to_copy":
        dst = kwargs.get("device")
        return dst is not None and torch.device(dst) != args[0].device
    src = args[1] if len(args) > 1 else kwargs.get("src")
    return isinstance(src, torch.Tensor) and src.device != args[0].device


class DispatchCounter(TorchDispatchMode):
    """Counts the ops dispatched while it is active.

    Args:
        where: Also record where each sync was called from (slower: a stack walk per sync).

    Attributes:
        ops: Ops seen.
        launching: Ops seen that are not views, metadata or profiler markers.
        fluxkern: fluxkern ops seen.
        host_data: aten.lift_fresh ops seen (tensors made from host values).
        syncs: Sync ops seen (SYNC_OPS).
        by_name: Counter of op names.
        sync_sites: Counter of (sync op, caller) when `where`.
        transfers: Copies between devices seen (aten._to_copy / copy_ whose source and result
            are on different devices: on a GPU run, a host <-> device transfer each, which the
            stream waits for; always 0 on the CPU).
        in_closure: Set by the caller while a closure runs; ops then also count in closure_*.
    """

    def __init__(self, where: bool = False) -> None:
        super().__init__()
        self.where = where
        self.ops = self.launching = self.fluxkern = self.syncs = self.host_data = 0
        self.transfers = 0
        self.closure_ops = self.closure_syncs = 0
        self.in_closure = False
        self.by_name: collections.Counter[str] = collections.Counter()
        self.sync_sites: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        ns, name = _op_name(func)
        self.ops += 1
        self.by_name[f"{ns}.{name}"] += 1
        sync = ns == "aten" and name in SYNC_OPS
        if ns != "profiler" and not (ns == "aten" and name in VIEW_OPS):
            self.launching += 1
        if ns == "aten" and name == "lift_fresh":
            self.host_data += 1
        if ns == "fluxkern":
            self.fluxkern += 1
        if ns == "aten" and name in ("_to_copy", "copy_") and _crosses_devices(name, args, kwargs):
            self.transfers += 1
            if self.where:
                self.sync_sites[f"transfer {name} <- {_caller()}"] += 1
        if sync:
            self.syncs += 1
            if self.where:
                self.sync_sites[f"{name} <- {_caller()}"] += 1
        if self.in_closure:
            self.closure_ops += 1
            self.closure_syncs += int(sync)
        return func(*args, **(kwargs or {}))


class _HostReads(TorchFunctionMode):
    """Counts the Tensor methods of HOST_READS into a DispatchCounter's syncs."""

    def __init__(self, counter: DispatchCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = getattr(func, "__name__", "")
        if name in HOST_READS and getattr(func, "__qualname__", "").startswith(
            ("Tensor.", "TensorBase.")
        ):
            c = self.counter
            c.syncs += 1
            c.by_name[f"Tensor.{name}"] += 1
            c.closure_syncs += int(c.in_closure)
            if c.where:
                c.sync_sites[f"Tensor.{name} <- {_caller()}"] += 1
        return func(*args, **(kwargs or {}))


class Counting:
    """A DispatchCounter with its host-read counter, as one context manager."""

    def __init__(self, where: bool = False) -> None:
        self.counter = DispatchCounter(where)
        self._reads = _HostReads(self.counter)

    def __enter__(self) -> DispatchCounter:
        self._reads.__enter__()
        return self.counter.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.counter.__exit__(*exc)
        self._reads.__exit__(*exc)


class _Done(Exception):
    """Ends the run once the counted epochs are over (solve's evaluation is not needed)."""


class CountEpochs(Callback):
    """Counts epochs warm + 1 .. warm + epochs of a run (each with its callbacks: put this one
    after the run's own, as solve's `callbacks` are), then ends the run with _Done.

    Args:
        warm: Epochs run before counting.
        epochs: Epochs counted (each apart).
        where: Record where the syncs come from.
    """

    def __init__(self, warm: int, epochs: int, where: bool = False) -> None:
        self.warm, self.epochs, self.where = warm, epochs, where
        self.counters: list[DispatchCounter] = []
        self.evals: list[int] = []
        self.seconds: list[float] = []
        self.optimizer = ""
        self._mode: DispatchCounter | None = None
        self._ctx: Counting | None = None
        self._evals = 0
        self._t = 0.0

    def on_start(self, trainer: Any) -> None:
        self.optimizer = type(trainer.optimizer).__name__
        real = trainer._closure

        def closure() -> torch.Tensor:
            self._evals += 1
            mode = self._mode
            if mode is None:
                return real()
            mode.in_closure = True
            try:
                return real()
            finally:
                mode.in_closure = False

        trainer._closure = closure  # the instance's: Trainer.step passes self._closure

    def _open(self) -> None:
        self._ctx = Counting(self.where)
        self._evals, self._t = 0, time.perf_counter()
        self._mode = self._ctx.__enter__()

    def _close(self) -> None:
        assert self._ctx is not None and self._mode is not None
        self._ctx.__exit__(None, None, None)
        self.seconds.append(time.perf_counter() - self._t)
        self.counters.append(self._mode)
        self.evals.append(self._evals)
        self._mode = self._ctx = None

    def on_epoch_end(self, trainer: Any, record: Any) -> bool | None:
        if self._ctx is not None:
            self._close()
        if len(self.counters) == self.epochs:
            raise _Done
        if trainer.epoch >= self.warm:
            self._open()
        return None

    def on_error(self, trainer: Any, exc: BaseException) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._mode = self._ctx = None


def count_problem(
    name: str, warm: int = 5, epochs: int = 5, where: bool = False, **options: Any
) -> dict[str, Any]:
    """Counts `epochs` epochs of `name` after `warm` ones, run as fluxkern.solve runs it.

    Args:
        name: A registered problem.
        warm: Epochs before counting (they fill the optimizer's history).
        epochs: Epochs counted, each apart.
        where: Record where the syncs come from.
        **options: More fluxkern.solve options (the problem's defaults fill the rest).

    Returns:
        {"problem", "optimizer", "epochs": [per epoch {"epoch", "evals", "ops", "launching",
        "fluxkern", "host_data", "syncs", "closure_ops", "closure_syncs", "seconds"}],
        "by_name", "sync_sites"} (the last two summed over the counted epochs).
    """
    counter = CountEpochs(warm, epochs, where)
    opts = {"progress": False, "plots": False, "epochs": warm + epochs + 1, **options}
    try:
        fk.solve(name, callbacks=[counter], **opts)
    except _Done:
        pass
    rows = []
    by_name: collections.Counter[str] = collections.Counter()
    sites: collections.Counter[str] = collections.Counter()
    for k, (c, ev, sec) in enumerate(
        zip(counter.counters, counter.evals, counter.seconds, strict=True)
    ):
        rows.append(
            {
                "epoch": warm + 1 + k,
                "evals": ev,
                "ops": c.ops,
                "launching": c.launching,
                "fluxkern": c.fluxkern,
                "host_data": c.host_data,
                "syncs": c.syncs,
                "transfers": c.transfers,
                "closure_ops": c.closure_ops,
                "closure_syncs": c.closure_syncs,
                "seconds": sec,
            }
        )
        by_name.update(c.by_name)
        sites.update(c.sync_sites)
    return {
        "problem": name,
        "optimizer": counter.optimizer,
        "epochs": rows,
        "by_name": dict(by_name),
        "sync_sites": dict(sites),
    }


def summary_row(res: dict[str, Any]) -> dict[str, Any]:
    """One table row: per-epoch means and ranges over the counted epochs."""
    eps = res["epochs"]

    def rng(key: str) -> str:
        vals = [e[key] for e in eps]
        lo, hi = min(vals), max(vals)
        return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"

    evals = sum(e["evals"] for e in eps)
    cops = sum(e["closure_ops"] for e in eps)
    csyncs = sum(e["closure_syncs"] for e in eps)
    ops = sum(e["ops"] for e in eps)
    syncs = sum(e["syncs"] for e in eps)
    return {
        "problem": res["problem"],
        "optimizer": res["optimizer"],
        "epochs": f"{eps[0]['epoch']}-{eps[-1]['epoch']}",
        "evals/epoch": rng("evals"),
        "ops/epoch": rng("ops"),
        "launching/epoch": rng("launching"),
        "fluxkern/epoch": rng("fluxkern"),
        "host data/epoch": rng("host_data"),
        "syncs/epoch": rng("syncs"),
        "transfers/epoch": rng("transfers"),
        "ops/eval": f"{cops / evals:.0f}" if evals else "",
        "syncs/eval": f"{csyncs / evals:.1f}" if evals else "",
        "ops outside evals/epoch": f"{(ops - cops) / len(eps):.0f}",
        "syncs outside evals/epoch": f"{(syncs - csyncs) / len(eps):.0f}",
        "ms/epoch (counting)": f"{1e3 * sum(e['seconds'] for e in eps) / len(eps):.0f}",
    }


COLUMNS = [
    "problem",
    "optimizer",
    "epochs",
    "evals/epoch",
    "ops/epoch",
    "launching/epoch",
    "fluxkern/epoch",
    "host data/epoch",
    "syncs/epoch",
    "transfers/epoch",
    "ops/eval",
    "syncs/eval",
    "ops outside evals/epoch",
    "syncs outside evals/epoch",
    "ms/epoch (counting)",
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", nargs="+", default=PROBLEMS)
    p.add_argument("--warm", type=int, default=5, help="epochs before counting (default 5)")
    p.add_argument("--epochs", type=int, default=5, help="epochs counted (default 5)")
    p.add_argument("--where", action="store_true", help="list where the syncs come from")
    p.add_argument("--optimizer", default=None, help="a solve optimizer instead of 'auto'")
    p.add_argument("--json", default=None, help="also write the counts to this file")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    info = common.machine_info(args.device)
    gpu = f"; {info['gpu']}, CUDA {info['cuda']}" if "gpu" in info else ""
    print(
        f"machine: {info['cpu']} ({info['cores']} cores, 1 torch thread){gpu}; Python "
        f"{info['python']}, torch {info['torch']}, fluxkern {info['fluxkern']}; device "
        f"{args.device}; epochs {args.warm + 1}-{args.warm + args.epochs} after {args.warm} warm"
    )
    extra: dict[str, Any] = {"device": args.device}
    if args.optimizer is not None:
        extra["optimizer"] = args.optimizer
    results = []
    for name in args.problems:
        res = count_problem(name, args.warm, args.epochs, args.where, **extra)
        results.append(res)
        for e in res["epochs"]:
            counts = ", ".join(f"{k} {v}" for k, v in e.items() if k not in ("epoch", "seconds"))
            print(f"  {name} epoch {e['epoch']}: {counts}, {1e3 * e['seconds']:.0f} ms")
        if args.where:
            for site, n in sorted(res["sync_sites"].items(), key=lambda kv: -kv[1]):
                print(f"    {n:5d}  {site}")
        sys.stdout.flush()
    common.print_table([summary_row(r) for r in results], COLUMNS)
    if args.json:
        common.dump_json(args.json, {"machine": info, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
