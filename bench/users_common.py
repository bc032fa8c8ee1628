"""Shared by both sides of the users workload (bench/users.py runs fluxkern, users_deepxde.py
runs DeepXDE, each in its own interpreter): the clock that leaves out the error checks, the
check schedule and the error trace. Imports numpy only (it runs in either environment)."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import numpy as np

__all__ = [
    "MARKS",
    "Clock",
    "Trace",
    "error_at",
    "headline",
    "load_eval",
    "one_thread",
    "relative_l2",
]

MARKS = (60.0, 300.0)  # the wall times (s) whose errors are reported, besides the end


def one_thread() -> None:
    """One thread for torch, BLAS and OpenMP (call before importing torch, and again after)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"


def relative_l2(pred: np.ndarray, exact: np.ndarray) -> float:
    """||pred - exact||_2 / ||exact||_2 in float64."""
    pred = np.asarray(pred, dtype=np.float64).ravel()
    exact = np.asarray(exact, dtype=np.float64).ravel()
    return float(np.linalg.norm(pred - exact) / np.linalg.norm(exact))


def load_eval(path: str) -> dict[str, Any]:
    """The evaluation file bench/users.py writes: points [G, d], the exact fields, the error
    fields and their output columns, and the problem's net size."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return {
            "points": z["points"],
            "exact": {f: z["exact_" + f] for f in meta["error_fields"]},
            **meta,
        }


class Clock:
    """Seconds since start, minus the time spent in checks."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.excluded = 0.0

    def now(self) -> float:
        return time.perf_counter() - self.start - self.excluded


class Trace:
    """Errors against time of one run, checked on a schedule.

    A check runs when `interval` seconds passed since the last one, or when the next step (as
    long as the last one) would cross a mark, so that the error at each mark is that of the
    last step that ended before it. The budget ends the run at the first step past it.

    Args:
        budget_s: Wall-time budget (checks excluded).
        interval_s: Seconds between checks.
        evaluate: () -> {field: rel. L2} at the current weights.
    """

    def __init__(self, budget_s: float, interval_s: float, evaluate) -> None:
        self.budget_s, self.interval_s, self.evaluate = budget_s, interval_s, evaluate
        self.clock = Clock()
        self.times: list[float] = []
        self.errors: list[dict[str, float]] = []
        self.steps: list[int] = []
        self.phases: list[str] = []
        self.cpu_s: list[float] = []  # this process's CPU seconds since the start, checks out
        self._cpu0, self._cpu_checks = time.process_time(), 0.0
        self._last_step_t = 0.0
        self._last_check_t = -math.inf
        self.marks = [m for m in MARKS if m < budget_s] + [budget_s]

    def step(self, step: int, phase: str = "") -> bool:
        """Called after every optimizer step; True when the budget is spent."""
        now = self.clock.now()
        dt = now - self._last_step_t
        self._last_step_t = now
        over = now >= self.budget_s
        crossing = any(now < m <= now + 1.2 * dt for m in self.marks)
        if over or crossing or now - self._last_check_t >= self.interval_s:
            self.check(step, phase, now)
        return over

    def check(self, step: int, phase: str, now: float | None = None) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        now = self.clock.now() if now is None else now
        cpu = c0 - self._cpu0 - self._cpu_checks
        errs = self.evaluate()
        self.times.append(round(now, 3))
        self.errors.append(errs)
        self.steps.append(step)
        self.phases.append(phase)
        self.cpu_s.append(round(cpu, 2))
        self._last_check_t = now
        self.clock.excluded += time.perf_counter() - t0
        self._cpu_checks += time.process_time() - c0
        self._last_step_t = self.clock.now()

    def as_dict(self) -> dict[str, Any]:
        return {
            "times_s": self.times,
            "errors": self.errors,
            "steps": self.steps,
            "phases": self.phases,
            "cpu_s": self.cpu_s,
            "budget_s": self.budget_s,
        }


def headline(errors: dict[str, float]) -> float:
    """The one number per check: the largest relative L2 over the error fields."""
    vals = [v for v in errors.values() if v is not None]
    return max(vals) if vals else math.nan


def error_at(trace: dict[str, Any], t: float | None) -> dict[str, Any] | None:
    """The last check at or before time t (None: the last check), or None when there is none."""
    best = None
    for i, ti in enumerate(trace["times_s"]):
        if t is None or ti <= t + 1e-9:
            best = i
    if best is None:
        return None
    errs = trace["errors"][best]
    cpu = trace.get("cpu_s")
    return {
        "time_s": trace["times_s"][best],
        "cpu_s": cpu[best] if cpu else None,
        "step": trace["steps"][best],
        "phase": trace["phases"][best],
        "errors": errs,
        "error": headline(errs),
    }
