"""The benchmark problems at their own sizes: fluxkern against plain PyTorch.

For every problem of the fluxkern.problems registry (flux form) this module builds what
`fluxkern.solve` builds (solver.py: the network of `build_model`, the problem's `flux_terms`
with its seed, the AugmentedLagrangian with the problem's dual rule and options, L-BFGS with
lr 1, max_iter 20, history 100 and strong Wolfe) and three contenders that compute the same loss:

1. fluxkern fused: AugmentedLagrangian(model, terms, backend="cpu").
2. fluxkern pure-torch twin: backend="torch".
3. plain PyTorch: an nn.Sequential (input standardisation, then Linear and the problem's
   activation) with the same weights, and the loss as users write it: per point set
   x.requires_grad_(True), y = net(x), torch.autograd.grad(y[:, o].sum(), x, create_graph=True)
   only for the outputs whose derivatives a residual on that point set reads (point sets that
   need none compute y only), the residuals from the blocks' expressions
   (BoundBlock.residuals_torch), C = r^2 or r, per-point multipliers, sums or means, and one
   rule object of fluxkern.duals (the same rule as the AL) for the dual update, fed with C from
   an extra evaluation without create_graph.

Blocks on the same points share one network evaluation in the plain contender, as user code
evaluates the interior once for the PDE and the flux constraints (fluxkern does the same: blocks
on one point set share one jet). For convection there is also the plain loss written out by hand
(`HandConvection`), to show that the generic plain contender is not slower than hand-written code.

Every contender can save and restore its parameters and dual state, so that each timed epoch
starts from the same point (its optimizer loading the same saved L-BFGS state).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

import common
import fluxkern as fk
from fluxkern import solver
from fluxkern.blocks import Block, BoundBlock, Constraint, Objective
from fluxkern.duals import make_rule
from fluxkern.problems.base import Problem

__all__ = [
    "CheckFailed",
    "Contender",
    "FluxkernContender",
    "HandConvection",
    "PlainTorch",
    "ProblemCase",
    "Standardize",
    "check_case",
    "check_contenders",
    "gemm_rate_gflops",
    "make_case",
    "run_epoch",
    "time_epochs",
    "time_eval",
]

# torch.optim.LBFGS settings of fluxkern.solver (solver.py, make_trainer): lr is the run's lr or 1.
LBFGS_SETTINGS: dict[str, Any] = {
    "max_iter": 20,
    "history_size": 100,
    "line_search_fn": "strong_wolfe",
}
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4}
# float32 at the start state (a few epochs in): reported, and enforced only this loosely. There
# the float32 gradient of some problems is ill-conditioned for every contender alike: on
# convection_diffusion (alpha 1e-6) after two epochs fused, twin and plain float32 gradients are
# 1.7e-4, 3.7e-4 and 1.7e-4 from the float64 gradient at the same weights (9.6e-7, 2.6e-7, 3.6e-7
# at the initial weights). The 1e-4 check is therefore made at the initial weights.
FLOAT32_START_TOLERANCE = 1e-2


class CheckFailed(SystemExit):
    """Contenders disagree on the loss, the parameter gradient or the updated multipliers."""


# --------------------------------------------------------------------------- the case
@dataclass
class ProblemCase:
    """A problem built as fluxkern.solve builds it (flux form).

    Attributes:
        problem: The problem instance.
        options: The solver options (the problem's defaults, the dtype set).
        dtype: Parameter and point dtype.
        model: The network at its initial weights (solve's seed); contenders copy it.
        terms: Objective and Constraint blocks with their points.
        point_sets: The distinct point sets, each [P, d] (a paired set is [2N, d]).
    """

    problem: Problem
    options: solver.SolveOptions
    dtype: torch.dtype
    model: fk.MLP
    terms: list[Block]
    point_sets: list[Tensor]

    @property
    def name(self) -> str:
        return self.problem.name

    @property
    def d(self) -> int:
        return self.model.in_features

    @property
    def m(self) -> int:
        return self.model.out_features

    @property
    def n_rows(self) -> int:
        """Rows the network is evaluated at: every distinct point set once, pairs twice."""
        return sum(int(x.shape[0]) for x in self.point_sets)

    def lbfgs(self, params: list[Tensor], cls: type = torch.optim.LBFGS) -> torch.optim.Optimizer:
        """A fresh L-BFGS optimizer (torch.optim.LBFGS or fluxkern.optim.LBFGS) with the solver's
        settings."""
        return cls(params, lr=self.options.lr or 1.0, **LBFGS_SETTINGS)

    def describe(self) -> dict[str, Any]:
        """Sizes and settings, for the result rows."""
        return {
            "d": self.d,
            "width": self.problem.width,
            "depth": self.problem.depth,
            "m": self.m,
            "activation": self.problem.activation,
            "N_rows": self.n_rows,
            "blocks": {
                t.name: {
                    "kind": t.kind,
                    "points": int(t.n),
                    "paired": t.paired,
                    "residuals": t.n_res,
                    "reduction": t.reduction,
                    **({"form": t.form} if isinstance(t, Constraint) else {}),
                }
                for t in self.terms
            },
            "dual": self.options.dual,
            "dual_options": dict(self.options.dual_options),
        }


def _same_points(a: Tensor, b: Tensor) -> bool:
    return a is b or (a.shape == b.shape and bool(torch.equal(a, b)))


def _points_of(t: Block) -> Tensor:
    return t.points  # [P, d]; paired blocks hold cat(a, b)


def make_case(name: str, dtype: torch.dtype, device: str = "cpu") -> ProblemCase:
    """The problem `name` as fluxkern.solve builds it (seed, net, points, dual rule and options).

    Args:
        name: A registered problem.
        dtype: torch.float64 or torch.float32.
        device: Torch device of the model and points.

    Returns:
        The case.
    """
    problem = fk.problems.get(name)
    options = solver.make_options(problem, {"dtype": str(dtype).replace("torch.", "")})
    dev = torch.device(device)
    torch.manual_seed(options.seed)  # as solver.make_trainer: seed, model, points
    model = solver.build_model(problem, "flux", dtype, dev)
    terms = problem.flux_terms(options.seed, dtype, dev)
    sets: list[Tensor] = []
    for t in terms:
        pts = _points_of(t)
        if not any(s.shape[1] == pts.shape[1] and _same_points(s, pts) for s in sets):
            sets.append(pts)
    return ProblemCase(problem, options, dtype, model, terms, sets)


# --------------------------------------------------------------------------- contenders
class Contender:
    """One implementation of the problem's loss, gradient and dual update.

    Subclasses set `name`, `params` (the network's weights and biases, in the order of the
    fluxkern MLP's parameters) and implement loss(), update_multipliers(), dual_state() and
    load_dual_state().
    """

    name: str = ""
    kind: str = ""  # "fused", "twin" or "plain"
    params: list[Tensor]
    # The L-BFGS its users run: fluxkern.solve's fluxkern.optim.LBFGS for fluxkern, torch's own
    # for plain PyTorch (the same algorithm and settings; fluxkern's fuses the two-loop recursion).
    optimizer: type = torch.optim.LBFGS

    def loss(self) -> Tensor:
        """The loss at the current parameters and multipliers (differentiable)."""
        raise NotImplementedError

    def loss_and_backward(self) -> Tensor:
        """The loss, with its gradient accumulated into the parameters' .grad, as the
        contender's users compute it in an optimizer's closure."""
        loss = self.loss()
        loss.backward()
        return loss

    def update_multipliers(self, at_result: bool = False) -> None:
        """The dual rule with C at the current parameters (at_result: the last closure call
        was made at them, as the optimizer reports; a contender may then reuse it)."""
        raise NotImplementedError

    def dual_state(self) -> dict[str, dict[str, Tensor]]:
        """A copy of the dual state: {constraint: {"lam": ..., "mu": ..., rule statistics}}."""
        raise NotImplementedError

    def load_dual_state(self, state: dict[str, dict[str, Tensor]]) -> None:
        """Restores a dual state (as dual_state() returns it)."""
        raise NotImplementedError

    def multipliers(self) -> dict[str, Tensor]:
        """lambda per constraint."""
        return {k: v["lam"] for k, v in self.dual_state().items()}

    def state(self) -> tuple[list[Tensor], dict[str, dict[str, Tensor]]]:
        """A copy of (parameters, dual state)."""
        return [p.detach().clone() for p in self.params], self.dual_state()

    def load_state(self, state: tuple[list[Tensor], dict[str, dict[str, Tensor]]]) -> None:
        """Restores (parameters, dual state)."""
        params, dual = state
        with torch.no_grad():
            for p, v in zip(self.params, params, strict=True):
                p.copy_(v)
        self.load_dual_state(dual)

    def loss_and_grad(self) -> tuple[Tensor, Tensor]:
        """(loss, flattened parameter gradient) after zeroing the gradients."""
        for p in self.params:
            p.grad = None
        loss = self.loss_and_backward()
        grad = torch.cat([p.grad.reshape(-1) for p in self.params])
        return loss.detach(), grad


def _copy_dual(state: dict[str, dict[str, Tensor]]) -> dict[str, dict[str, Tensor]]:
    return {k: {n: v.detach().clone() for n, v in s.items()} for k, s in state.items()}


class FluxkernContender(Contender):
    """fluxkern's AugmentedLagrangian on a copy of the case's network.

    Args:
        case: The problem case.
        backend: "cpu" (fused) or "torch" (the pure-torch twin).
    """

    optimizer = fk.optim.LBFGS

    def __init__(self, case: ProblemCase, backend: str) -> None:
        self.kind = "twin" if backend == "torch" else "fused"
        label = "pure-torch twin" if backend == "torch" else "fused"
        self.name = f"fluxkern [{backend}, {label}]"
        self.model = copy.deepcopy(case.model)
        self.params = list(self.model.parameters())
        opts = case.options
        self.al = fk.AugmentedLagrangian(
            self.model, case.terms, dual=opts.dual, backend=backend, **opts.dual_options
        )

    def loss(self) -> Tensor:
        return self.al()

    def loss_and_backward(self) -> Tensor:
        self.evaluation = self.al.evaluate(backward=True)  # fluxkern.solve's closure
        return self.evaluation.loss

    def update_multipliers(self, at_result: bool = False) -> None:
        # as fluxkern's Trainer: the last closure evaluation where it holds, else a new one
        evaluation, self.evaluation = getattr(self, "evaluation", None), None
        self.al.update_multipliers(evaluation if at_result else None)

    def dual_state(self) -> dict[str, dict[str, Tensor]]:
        return _copy_dual(self.al.state_dict()["state"])

    def load_dual_state(self, state: dict[str, dict[str, Tensor]]) -> None:
        self.al.load_state_dict({"dual": self.al.dual, "state": state, "last_loss": None})

    def unfused_blocks(self) -> list[str]:
        """Blocks that run in torch on top of the jet (not polynomial of degree <= 3)."""
        return [name for name, b in self.al.bound.items() if not b.fused]

    def op_calls(self) -> int:
        """Op calls per loss evaluation (fused groups plus torch-evaluated blocks)."""
        groups = getattr(self.al, "_groups", [])
        return len(groups) + len(self.unfused_blocks())


class Standardize(nn.Module):
    """(x - shift) / scale, the first step of the plain network."""

    def __init__(self, shift: Tensor, scale: Tensor) -> None:
        super().__init__()
        self.register_buffer("shift", shift.detach().clone())
        self.register_buffer("scale", scale.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.shift) / self.scale


def plain_sequential(model: fk.MLP) -> nn.Sequential:
    """Standardize, then Linear and the activation, with copies of the model's weights.

    The parameters come out in the order of model.parameters(), so gradients compare entry by
    entry (to_sequential() would fold the standardisation into the first layer's weights).
    """
    folded = model.to_sequential()  # the activation modules (nn.Tanh, fluxkern.Sin, nn.SiLU)
    mods: list[nn.Module] = [Standardize(model.input_shift, model.input_scale)]
    for i, layer in enumerate(model.layers):
        mods.append(copy.deepcopy(layer))
        if i < len(model.layers) - 1:
            mods.append(copy.deepcopy(folded[2 * i + 1]))
    return nn.Sequential(*mods)


class _GradJac:
    """Stands in for J [P, m, d] where only some outputs' gradients were taken: jac[:, o, j]."""

    def __init__(self, grads: dict[int, Tensor]) -> None:
        self.grads = grads  # output -> [P, d]

    def __getitem__(self, index: tuple) -> Tensor:
        _, o, j = index
        return self.grads[o][:, j]


def derivative_outputs(t: Block, m: int) -> set[int]:
    """Outputs whose input derivatives the block's residuals read (all m for non-polynomials)."""
    outs: set[int] = set()
    for e in t.exprs:
        if not e.is_polynomial:
            return set(range(m))
        for mono in e.polynomial():
            outs.update(a[1] for a in mono if a[0] == "J")
    return outs


@dataclass
class _PointSet:
    x: Tensor  # [P, d]
    blocks: list[BoundBlock]
    outs: list[int]  # outputs differentiated on this set


class PlainTorch(Contender):
    """The flux-form loss in plain PyTorch autograd, built generically from the blocks.

    Args:
        case: The problem case.
        name: Row label.
    """

    kind = "plain"

    def __init__(self, case: ProblemCase, name: str = "plain PyTorch autograd.grad") -> None:
        self.name = name
        self.dtype = case.dtype
        self.net = plain_sequential(case.model)
        self.params = list(self.net.parameters())
        d, m = case.d, case.m
        dev = case.model.input_shift.device
        self.sets: list[_PointSet] = []
        for t in case.terms:
            b = t.bind(d, m, case.dtype, dev)
            for s in self.sets:
                if _same_points(s.x, b.x):
                    s.blocks.append(b)
                    s.outs = sorted(set(s.outs) | derivative_outputs(t, m))
                    break
            else:
                self.sets.append(_PointSet(b.x, [b], sorted(derivative_outputs(t, m))))
        opts = case.options
        self.rule = make_rule(opts.dual, **opts.dual_options)
        # mu stays at its initial value under rmsprop: skip the mu/2 C^2 term when that is 0
        self.use_mu = not (opts.dual == "rmsprop" and self.rule.options["mu"] == 0.0)
        self._state: dict[str, dict[str, Tensor]] = {}
        self.blocks: dict[str, Block] = {}
        for t in case.terms:
            self.blocks[t.name] = t
            if isinstance(t, Constraint):
                shape = (t.n, t.n_res) if t.multiplier == "pointwise" else (t.n_res,)
                self._state[t.name] = self.rule.init_state(shape, t.n_res, t.init, case.dtype, dev)

    # ----------------------------------------------------------------- residuals and loss
    def residuals(self, create_graph: bool = True) -> dict[str, Tensor]:
        """r [N, R] per block (paired: e(a) - e(b)); differentiable when create_graph."""
        out: dict[str, Tensor] = {}
        for s in self.sets:
            if s.outs:
                x = s.x.detach().requires_grad_(True)
                y = self.net(x)  # [P, m]
                grads = {
                    o: torch.autograd.grad(
                        y[:, o].sum(), x, create_graph=create_graph, retain_graph=True
                    )[0]
                    for o in s.outs
                }  # each [P, d]
            else:
                y = self.net(s.x)
                grads = {}
            jac = _GradJac(grads)
            for b in s.blocks:
                out[b.block.name] = b.residuals_torch(y, jac)  # type: ignore[arg-type]
        return out

    def block_terms(self, res: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """(loss, C per constraint) from the residuals."""
        total: Tensor | None = None
        values: dict[str, Tensor] = {}
        for name, r in res.items():
            t = self.blocks[name]
            red = 1.0 / t.n if t.reduction == "mean" and t.n else 1.0
            if isinstance(t, Objective):
                term = (r * r).sum() * (t.weight * red)
            else:
                c = r * r if t.form == "squared" else r
                st = self._state[name]
                s = st["lam"] * c
                if self.use_mu:
                    s = s + 0.5 * st["mu"] * c * c
                term = s.sum() * red if red != 1.0 else s.sum()
                values[name] = c
            total = term if total is None else total + term
        assert total is not None
        return total, values

    def loss(self) -> Tensor:
        return self.block_terms(self.residuals(create_graph=True))[0]

    def update_multipliers(self, at_result: bool = False) -> None:
        with torch.enable_grad():
            res = self.residuals(create_graph=False)
        with torch.no_grad():
            loss, values = self.block_terms({k: v.detach() for k, v in res.items()})
            total = float(loss)
            for name, st in self._state.items():
                t = self.blocks[name]
                c = values[name]
                if isinstance(t, Constraint) and t.multiplier == "global":
                    c = c.mean(0) if t.reduction == "mean" else c.sum(0)
                self.rule.update(st, c, total)

    def dual_state(self) -> dict[str, dict[str, Tensor]]:
        return _copy_dual(self._state)

    def load_dual_state(self, state: dict[str, dict[str, Tensor]]) -> None:
        if set(state) != set(self._state):
            raise ValueError(f"dual state for {sorted(state)}, expected {sorted(self._state)}")
        self._state = _copy_dual(state)


class HandConvection(PlainTorch):
    """convection's plain loss written out by hand (the same numbers as PlainTorch's).

    u_t + beta u_x at the interior points (sum of squares), lam (u(0, t) - u(2 pi, t))^2 on the
    pairs and lam (u(x, 0) - sin x)^2 at t = 0, each summed; the dual update is PlainTorch's.
    """

    def __init__(self, case: ProblemCase) -> None:
        if case.name != "convection":
            raise ValueError(f"HandConvection is for convection, not {case.name}")
        super().__init__(case, name="plain PyTorch, written by hand")
        terms = {t.name: t for t in case.terms}
        self.beta = float(case.problem.beta)
        self.xi = terms["pde"].points  # [N, 2]
        pair = terms["periodic"]
        self.xa, self.xb = pair.points[: pair.n], pair.points[pair.n :]  # [Np, 2] each
        self.x0 = terms["initial"].points  # [N0, 2]
        self.g0 = torch.sin(self.x0[:, 0])  # u(x, 0) = sin x

    def loss(self) -> Tensor:
        net = self.net
        xi = self.xi.detach().requires_grad_(True)
        u = net(xi)[:, 0]
        (du,) = torch.autograd.grad(u.sum(), xi, create_graph=True)  # [N, 2]
        r = du[:, 1] + self.beta * du[:, 0]
        lam_p = self._state["periodic"]["lam"][:, 0]
        lam_0 = self._state["initial"]["lam"][:, 0]
        cp = net(self.xa)[:, 0] - net(self.xb)[:, 0]
        c0 = net(self.x0)[:, 0] - self.g0
        return (r * r).sum() + (lam_p * cp * cp).sum() + (lam_0 * c0 * c0).sum()


# --------------------------------------------------------------------------- checks
def _rel(a: Tensor, b: Tensor) -> float:
    den = float(torch.linalg.vector_norm(b.double()))
    num = float(torch.linalg.vector_norm((a - b).double()))
    return num / den if den > 0 else num


_QUANTITY = {
    "loss_rel": "loss",
    "grad_rel": "parameter gradient",
    "lam_rel": "multipliers after the dual update",
}


def check_case(
    contenders: list[Contender],
    initial: tuple[list[Tensor], dict[str, dict[str, Tensor]]],
    start: tuple[list[Tensor], dict[str, dict[str, Tensor]]],
    dtype: torch.dtype,
    label: str = "",
) -> dict[str, Any]:
    """The correctness check before timing (see check_contenders).

    float64: at the start state, tolerance 1e-10. float32: at the initial weights and
    multipliers, tolerance 1e-4, and at the start state with FLOAT32_START_TOLERANCE (the reason
    is written there).

    Returns:
        {"start": differences at the start state, "initial": at the initial state (float32)
        or None, "tolerance": {state: tolerance}}.

    Raises:
        CheckFailed: As check_contenders.
    """
    if dtype == torch.float64:
        diffs = check_contenders(contenders, start, dtype, label)
        return {"start": diffs, "initial": None, "tolerance": {"start": TOLERANCE[dtype]}}
    first = check_contenders(contenders, initial, dtype, label + " (initial weights)")
    diffs = check_contenders(
        contenders, start, dtype, label + " (start state)", tol=FLOAT32_START_TOLERANCE
    )
    tols = {"initial": TOLERANCE[dtype], "start": FLOAT32_START_TOLERANCE}
    return {"start": diffs, "initial": first, "tolerance": tols}


def check_contenders(
    contenders: list[Contender],
    start: tuple[list[Tensor], dict[str, dict[str, Tensor]]],
    dtype: torch.dtype,
    label: str = "",
    tol: float | None = None,
) -> dict[str, dict[str, float]]:
    """Loss, parameter gradient and updated multipliers of every contender against the first's.

    Every contender starts from `start` and is restored to it afterwards. Differences are
    relative 2-norms (the loss: |a - b| / |b|).

    Args:
        contenders: The first is the reference (fluxkern fused).
        start: (parameters, dual state) to compare at.
        dtype: Decides the default tolerance: 1e-10 in float64, 1e-4 in float32 (float32
            rounding of sums over a few thousand points).
        label: Names the case in the message.
        tol: Overrides the tolerance.

    Returns:
        {contender: {"loss_rel", "grad_rel", "lam_rel"}}.

    Raises:
        CheckFailed: A contender differs beyond the tolerance; the message names it, the
            quantity and both values.
    """
    tol = TOLERANCE[dtype] if tol is None else tol
    ref: dict[str, Any] = {}
    out: dict[str, dict[str, float]] = {}
    for c in contenders:
        c.load_state(start)
        loss, grad = c.loss_and_grad()
        c.update_multipliers()
        lam = torch.cat([v.reshape(-1) for _, v in sorted(c.multipliers().items())])
        c.load_state(start)
        if not ref:
            ref = {"name": c.name, "loss": loss, "grad": grad, "lam": lam}
        diffs = {
            "loss_rel": _rel(loss, ref["loss"]),
            "grad_rel": _rel(grad, ref["grad"]),
            "lam_rel": _rel(lam, ref["lam"]) if lam.numel() else 0.0,
        }
        out[c.name] = {k: float(f"{v:.3g}") for k, v in diffs.items()}
        print(
            f"  check {label} {c.name}: loss {float(loss):.12g}, rel. diff loss "
            f"{diffs['loss_rel']:.1e}, gradient {diffs['grad_rel']:.1e}, multipliers after the "
            f"dual update {diffs['lam_rel']:.1e}",
            flush=True,
        )
        bad = {k: v for k, v in diffs.items() if not v <= tol}
        if bad:
            what = ", ".join(f"{_QUANTITY[k]} {v:.2e}" for k, v in bad.items())
            raise CheckFailed(
                f"problems workload, {label}: {c.name} disagrees with {ref['name']} beyond the "
                f"tolerance {tol:g} (relative): {what}; loss {float(loss)!r} against "
                f"{float(ref['loss'])!r}. Not timing a contender that computes something else."
            )
    return out


# --------------------------------------------------------------------------- timing
def time_eval(c: Contender, min_time: float, device: str = "cpu") -> float:
    """Median seconds of one loss + gradient evaluation (zero grads, loss, backward); on cuda
    each evaluation ends with a synchronize."""

    def step() -> None:
        for p in c.params:
            p.grad = None
        c.loss_and_backward()

    return common.time_call(step, device=device, min_time=min_time, warmup=3)


def run_epoch(c: Contender, opt: torch.optim.Optimizer) -> int:
    """One epoch as the solver runs it: one L-BFGS step(closure), then one dual update.

    Returns:
        The number of closure evaluations.
    """
    count = 0

    def closure() -> Tensor:
        nonlocal count
        count += 1
        opt.zero_grad(set_to_none=True)
        return c.loss_and_backward()

    opt.step(closure)
    c.update_multipliers(bool(getattr(opt, "last_closure_at_result", False)))
    return count


def time_epochs(
    contenders: list[Contender],
    start: tuple[list[Tensor], dict[str, dict[str, Tensor]]],
    make_opt: Callable[[list[Tensor], type], torch.optim.Optimizer],
    opt_state: dict[str, Any] | None,
    reps: int,
    warmup: int = 1,
    device: str = "cpu",
) -> dict[str, dict[str, Any]]:
    """Epochs from the same start (parameters, multipliers and the L-BFGS state of the warm
    epochs, history included, as in a running solve), round robin over the contenders so that
    a disturbance of the machine hits all of them alike. Each contender's optimizer (its
    `optimizer` class) loads a copy of opt_state (torch.optim.LBFGS's format) before each epoch.
    On cuda the clock starts and stops after a synchronize.

    Returns:
        {contender: {"s": median seconds, "evals": closure evaluations of each timed epoch,
        "loss_after": the loss after the last epoch's dual update}}.
    """
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    evals: dict[str, list[int]] = {c.name: [] for c in contenders}
    after: dict[str, float] = {}
    for rep in range(warmup + reps):
        for c in contenders:
            c.load_state(start)
            opt = make_opt(c.params, c.optimizer)
            if opt_state is not None:
                opt.load_state_dict(copy.deepcopy(opt_state))
            common.sync(device)
            t0 = time.perf_counter()
            n = run_epoch(c, opt)
            common.sync(device)
            t = time.perf_counter() - t0
            if rep >= warmup:
                times[c.name].append(t)
                evals[c.name].append(n)
            if rep == warmup + reps - 1:
                after[c.name] = float(c.loss().detach())
            c.load_state(start)
    return {
        c.name: {
            "s": statistics.median(times[c.name]),
            "evals": evals[c.name],
            "loss_after": after[c.name],
        }
        for c in contenders
    }


def gemm_rate_gflops(
    rows: int, width: int, dtype: torch.dtype, min_time: float, device: str = "cpu"
) -> float:
    """GFLOP/s of torch.mm [rows, W] x [W, W] (the jet's stacked-row GEMM at these sizes)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(rows, width, generator=gen, dtype=dtype).to(device)
    b = torch.randn(width, width, generator=gen, dtype=dtype).to(device)
    out = torch.empty(rows, width, dtype=dtype, device=device)
    t = common.time_call(
        lambda: torch.mm(a, b, out=out), device=device, min_time=min_time, warmup=3
    )
    return 2.0 * rows * width * width / t / 1e9
