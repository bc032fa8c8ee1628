"""Time to accuracy: wall time until the relative L2 error of u on the problem's evaluation grid
reaches a target, for fluxkern (fluxkern.solve, flux form, its defaults) and DeepXDE (PINN and
flux form) on the same points, network sizes and dtype.

Clock: from the start of set-up (model building, DeepXDE's compile) to the first check at which
the error is at or below the target; the time spent in the error checks themselves is
subtracted. A run that has not reached the target after `cap_s` seconds stops and is reported
as not reached, with its best error.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

import deepxde_steps as dx
import poisson_case
from fluxkern import problems, solver
from fluxkern.problems import composite_heat
from fluxkern.problems.base import relative_l2

__all__ = ["Trace", "deepxde_case", "deepxde_time_to_accuracy", "fluxkern_time_to_accuracy"]


@dataclass
class Trace:
    """Error against time of one run.

    Attributes:
        contender: Row label.
        problem: Problem name.
        target: The relative L2 target of u.
        times_s: Check times (seconds, checks excluded).
        errors: Relative L2 of u at those times.
        reached_s: Time at which the target was first met, or None.
        steps: Optimizer iterations (DeepXDE) or epochs (fluxkern) run.
        note: How it was run.
        error: Why it failed, if it did.
    """

    contender: str
    problem: str
    target: float
    times_s: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    reached_s: float | None = None
    steps: int = 0
    note: str = ""
    error: str | None = None

    def record(self, t: float, err: float) -> bool:
        """Adds one check; True when the target is met."""
        self.times_s.append(t)
        self.errors.append(err)
        if err <= self.target and self.reached_s is None:
            self.reached_s = t
        return self.reached_s is not None

    def best(self) -> float:
        return min(self.errors) if self.errors else math.nan

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"best_error": self.best()}


class _Clock:
    """Elapsed seconds since start, minus the time spent inside checks."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.excluded = 0.0

    def now(self) -> float:
        return time.perf_counter() - self.start - self.excluded


def fluxkern_time_to_accuracy(name: str, target: float, cap_s: float) -> Trace:
    """fluxkern.solve on problem `name` (flux form, the problem's defaults), checked every epoch."""
    prob = problems.get(name)
    dtype = getattr(torch, prob.defaults.get("dtype", "float64"))
    grid = prob.eval_grid(dtype, torch.device("cpu"))
    exact_u = prob.exact(grid.points)["u"]
    trace = Trace(
        "fluxkern (flux, augmented Lagrangian)",
        name,
        target,
        note=f"fluxkern.solve defaults: {prob.defaults.get('optimizer')}, "
        f"{prob.defaults.get('dtype')}, net {prob.width}x{prob.depth}",
    )
    clock = _Clock()

    def check(epoch: int, model: torch.nn.Module) -> bool:
        t_check = time.perf_counter()
        now = clock.now()
        u = solver.predict(prob, model, "flux", grid.points)["u"]
        done = trace.record(now, relative_l2(u, exact_u))
        trace.steps = epoch
        clock.excluded += time.perf_counter() - t_check
        _progress(trace)
        return done or now > cap_s

    solver.solve(prob, epochs=10**7, callback=check, progress=False, plots=False)
    return trace


def deepxde_case(name: str, dtype: torch.dtype) -> dx.DeepXDECase:
    """Problem `name` (poisson or composite_heat) for DeepXDE, on fluxkern's points (seed 0)."""
    prob = problems.get(name)
    dev = torch.device("cpu")
    if name == "poisson":
        pts = prob.points(0, dtype, dev)
        return dx.poisson_for_deepxde(poisson_case.PoissonPoints(pts["interior"], pts["boundary"]))
    if name == "composite_heat":
        pts = prob.points(0, dtype, dev)
        xi, xl, xr, x0 = (pts[k] for k in ("interior", "left", "right", "initial"))
        conds = [(p, prob.exact(p)["u"]) for p in (xl, xr, x0)]

        def k_of(x: Tensor) -> Tensor:
            return torch.where(x[:, 0:1] < 0, 1.0, 3.0 * math.pi).to(x.dtype)

        def f_of(x: Tensor) -> Tensor:
            return composite_heat.source(x)[:, None]

        def pde_pinn(x: Tensor, y: Tensor) -> Tensor:
            dde = dx.import_deepxde()
            u_t = dde.grad.jacobian(y, x, i=0, j=1)
            u_xx = dde.grad.hessian(y, x, i=0, j=0)
            return u_t - k_of(x) * u_xx - f_of(x)  # k piecewise constant: (k u_x)_x = k u_xx

        def pde_flux(x: Tensor, y: Tensor) -> list[Tensor]:
            dde = dx.import_deepxde()
            jac = dde.grad.jacobian
            u_x, u_t, s_x = jac(y, x, i=0, j=0), jac(y, x, i=0, j=1), jac(y, x, i=1, j=0)
            return [u_t - s_x - f_of(x), y[:, 1:2] - k_of(x) * u_x]

        return dx.DeepXDECase(
            xi,
            conds,
            {"pinn": pde_pinn, "flux": pde_flux},
            {"pinn": 1, "flux": 2},
            ([-1, 0], [1, 2]),
        )
    raise ValueError(f"no DeepXDE form of {name!r}")


def deepxde_time_to_accuracy(
    name: str, form: str, optimizer: str, target: float, cap_s: float, check_every: int = 100
) -> Trace:
    """DeepXDE on problem `name` in `form` ("pinn" / "flux") with "adam" (lr 1e-3, checked every
    `check_every` iterations) or "L-BFGS" (20 iterations per DeepXDE step, checked every step)."""
    trace = Trace(f"DeepXDE {form} ({optimizer})", name, target)
    try:
        dde = dx.import_deepxde()
    except ImportError as exc:
        trace.error = f"DeepXDE not available: {exc}"
        return trace
    default_dtype = torch.get_default_dtype()  # DeepXDE's set_default_float changes it
    prob = problems.get(name)
    dtype = getattr(torch, prob.defaults.get("dtype", "float64"))
    grid = prob.eval_grid(dtype, torch.device("cpu"))
    grid_np = grid.points.numpy()
    exact_u = prob.exact(grid.points)["u"]
    clock = _Clock()
    case = deepxde_case(name, dtype)
    torch.manual_seed(0)  # the initial weights fluxkern.solve draws for seed 0
    seq = solver.build_model(prob, form, dtype, torch.device("cpu")).to_sequential()
    if optimizer == "L-BFGS":
        dde.optimizers.set_LBFGS_options(maxiter=10**7)
        # DeepXDE's own knob (no public setter): L-BFGS iterations per step, i.e. how often the
        # callbacks (our error check) run; 20 as fluxkern's epochs.
        dde.optimizers.config.LBFGS_options["iter_per_step"] = 20
        dde.optimizers.config.LBFGS_options["fun_per_step"] = 25
        trace.note = "L-BFGS (strong Wolfe, 20 iterations per check)"
    else:
        trace.note = f"Adam lr 1e-3, checked every {check_every} iterations"
    model = dx.build_model(dde, case, form, seq, dtype, optimizer=optimizer)

    class Check(dde.callbacks.Callback):
        def on_epoch_end(self) -> None:
            step = self.model.train_state.step
            if optimizer != "L-BFGS" and step % check_every:
                return
            t_check = time.perf_counter()
            now = clock.now()
            u = torch.as_tensor(self.model.predict(grid_np)[:, 0], dtype=dtype)
            done = trace.record(now, relative_l2(u, exact_u))
            trace.steps = step
            clock.excluded += time.perf_counter() - t_check
            _progress(trace)
            if done or now > cap_s or not math.isfinite(trace.errors[-1]):
                self.model.stop_training = True

    kw: dict[str, Any] = {"callbacks": [Check()], "verbose": 0, "display_every": 10**9}
    if optimizer != "L-BFGS":
        kw["iterations"] = 10**8
    try:
        model.train(**kw)
    except Exception as exc:  # noqa: BLE001 -- reported in the table
        trace.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        torch.set_default_dtype(default_dtype)
    return trace


def _progress(trace: Trace) -> None:
    if len(trace.errors) % 10 == 1 or trace.reached_s is not None:
        print(
            f"    {trace.contender} {trace.problem}: {trace.times_s[-1]:7.1f} s, step "
            f"{trace.steps}, rel. L2 u {trace.errors[-1]:.2e}",
            flush=True,
        )
