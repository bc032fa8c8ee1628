"""The augmented-Lagrangian loss over point blocks, with multiplier state and dual updates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fluxkern import ops
from fluxkern.blocks import MAX_RESIDUALS, Block, BoundBlock, Constraint, Objective
from fluxkern.duals import make_rule
from fluxkern.evaluation import Evaluation
from fluxkern.lagrangian_checks import _check_terms, _hooks_on
from fluxkern.lagrangian_groups import _Group
from fluxkern.nn import MlpSpec, gradient_targets, mlp_spec
from fluxkern.program import forms_and_reductions
from fluxkern.residual_terms import (
    ResidualTerm,
    loss_derivatives,
    torch_residual_jacobian,
    unknown_columns,
)
from fluxkern.unknowns import UnknownSet, attach_unknowns, unknowns_of

__all__ = ["AugmentedLagrangian"]


class AugmentedLagrangian:
    """L = sum_obj w R(sum_i r_i^2) + sum_con R(sum_i lambda_i C_i + mu_i / 2 C_i^2).

    Calling the object returns L at the model's current parameters, differentiable with respect
    to them (works with torch.optim.Adam and with torch.optim.LBFGS closures). evaluate() gives
    L and the constraint values C (an :class:`fluxkern.evaluation.Evaluation`), with the
    parameter gradient in ``.grad`` when asked (an optimizer's closure: without an autograd
    graph where it can). update_multipliers() applies the dual rule with C at the current
    parameters, those of an evaluation made there when given one.

    Args:
        model: A fluxkern.MLP or an nn.Sequential that fluxkern.jet accepts.
        terms: Objective and Constraint blocks (unique names).
        dual: "rmsprop", "pecann" or "capu".
        backend: None (fastest for the model's device), "torch", "cpu" or "cuda".
        **dual_options: Options of the dual rule (e.g. beta, eps, eta for rmsprop).

    Unknowns (fluxkern.unknown) in the blocks' expressions are trainable constants: their
    parameters are attached to the model as ``model.unknowns`` (a
    :class:`fluxkern.unknowns.UnknownSet`), so build the optimizer over ``model.parameters()``
    after this object.
    """

    def __init__(
        self,
        model: nn.Module,
        terms: Sequence[Block],
        dual: str = "rmsprop",
        backend: str | None = None,
        **dual_options: float,
    ) -> None:
        self.model = model
        spec = mlp_spec(model)
        param = spec.weights[0]
        d, m = param.shape[1], spec.weights[-1].shape[0]
        self.dtype, self.device = param.dtype, param.device
        self.backend = ops.resolve_backend(backend, self.device)
        self.rule = make_rule(dual, **dual_options)
        self.dual = dual
        self._dims = (d, m)
        _check_terms(terms)
        self.terms = list(terms)
        self.unknowns: UnknownSet | None = attach_unknowns(
            model, unknowns_of(e for t in self.terms for e in t.exprs), self.dtype, self.device
        )
        self.bound: dict[str, BoundBlock] = {}
        self._state: dict[str, dict[str, Any]] = {}
        for t in self.terms:
            self.bound[t.name] = t.bind(d, m, self.dtype, self.device)
            if isinstance(t, Constraint):
                self._state[t.name] = self._init_state(t)
        self._last_loss: Tensor | float | None = None
        # names the multiplier state; renewed by every change of multipliers or blocks, so that
        # an Evaluation made before one is refused (see update_multipliers)
        self._token = object()
        self._build_groups()

    def _init_state(self, t: Constraint) -> dict[str, Any]:
        shape = (t.n, t.n_res) if t.multiplier == "pointwise" else (t.n_res,)
        return self.rule.init_state(shape, t.n_res, t.init, self.dtype, self.device)

    def set_terms(self, terms: Sequence[Block], pointwise: str = "reset") -> None:
        """Replaces the blocks by blocks of the same names, kinds and residual counts, e.g. on
        resampled points; the loss then uses them.

        Global multipliers (one per residual) and their penalties and statistics carry over.
        Pointwise multipliers belong to the old points, so they are meaningless on new ones:
        pointwise="reset" starts them (with their penalties and statistics) anew, as at
        construction; pointwise="error" refuses; pointwise="keep" keeps them (for the same points
        drawn again, e.g. when a resumed run redraws the points its multipliers were saved on).

        Args:
            terms: The new Objective and Constraint blocks.
            pointwise: "reset", "error" or "keep" (what happens to pointwise multipliers).

        Raises:
            ValueError: The blocks do not match the old ones, or pointwise="error" and a
                constraint has pointwise multipliers, or pointwise="keep" and a constraint's
                number of points changed (nothing is changed then).
        """
        if pointwise not in ("reset", "error", "keep"):
            raise ValueError(f"pointwise must be 'reset', 'error' or 'keep'; got {pointwise!r}")
        _check_terms(terms)
        old = {t.name: t for t in self.terms}
        if sorted(old) != sorted(t.name for t in terms):
            raise ValueError(f"new blocks {[t.name for t in terms]} do not match {sorted(old)}")
        for t in terms:
            o = old[t.name]
            same = type(t) is type(o) and t.n_res == o.n_res
            if not same or getattr(t, "multiplier", None) != getattr(o, "multiplier", None):
                raise ValueError(f"{t.name}: the new block is not of the old one's kind")
            if pointwise == "error" and getattr(t, "multiplier", None) == "pointwise":
                raise ValueError(
                    f"{t.name} has pointwise multipliers, which do not carry over to new points"
                )
            if pointwise == "keep" and getattr(t, "multiplier", None) == "pointwise":
                if t.n != o.n:
                    raise ValueError(f"{t.name}: {t.n} points, not {o.n}; cannot keep lambda")
        d, m = self._dims
        self.terms = list(terms)
        self.unknowns = attach_unknowns(
            self.model, unknowns_of(e for t in self.terms for e in t.exprs), self.dtype, self.device
        )
        self.bound = {t.name: t.bind(d, m, self.dtype, self.device) for t in self.terms}
        for t in self.terms:
            if isinstance(t, Constraint) and t.multiplier == "pointwise" and pointwise != "keep":
                self._state[t.name] = self._init_state(t)
        self._build_groups()
        self._token = object()

    # ------------------------------------------------------------------ state
    @property
    def last_loss(self) -> float | None:
        """The loss of the last call or of the last evaluate(backward=True) (read from the
        device only when asked: neither synchronises), or None before the first."""
        if isinstance(self._last_loss, Tensor):
            self._last_loss = float(self._last_loss)
        return self._last_loss

    @property
    def last_loss_unread(self) -> Tensor | float | None:
        """:attr:`last_loss` without reading it from the device: the tensor until something
        reads it, then the float (for a caller that reads it with other values at once)."""
        return self._last_loss

    @last_loss.setter
    def last_loss(self, value: float | None) -> None:
        self._last_loss = value

    @property
    def multipliers(self) -> dict[str, Tensor]:
        """lambda per constraint: [N, R] (pointwise) or [R] (global)."""
        return {k: s["lam"] for k, s in self._state.items()}

    @property
    def penalties(self) -> dict[str, Tensor]:
        """mu per constraint, [R]."""
        return {k: s["mu"] for k, s in self._state.items()}

    def state_dict(self) -> dict[str, Any]:
        """Multipliers, penalties and the dual rule's statistics, by constraint name."""
        return {
            "dual": self.dual,
            "options": dict(self.rule.options),
            "state": {
                k: {n: v.detach().clone() for n, v in s.items()} for k, s in self._state.items()
            },
            "last_loss": self.last_loss,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what state_dict() saved; names, rule and shapes must match."""
        if state.get("dual") != self.dual:
            raise ValueError(f"state is for dual rule {state.get('dual')!r}, not {self.dual!r}")
        saved = state["state"]
        if set(saved) != set(self._state):
            raise ValueError(
                f"state has constraints {sorted(saved)}, expected {sorted(self._state)}"
            )
        for name, s in saved.items():  # check everything before changing anything
            if set(s) != set(self._state[name]):
                raise ValueError(f"{name}: state keys {sorted(s)} != {sorted(self._state[name])}")
            for key, val in s.items():
                cur = self._state[name][key]
                if tuple(val.shape) != tuple(cur.shape):
                    raise ValueError(f"{name}.{key}: shape {list(val.shape)} != {list(cur.shape)}")
        for name, s in saved.items():
            for key, val in s.items():
                cur = self._state[name][key]
                self._state[name][key] = val.to(dtype=cur.dtype, device=cur.device).clone()
        self.last_loss = state.get("last_loss")
        self._token = object()

    # ------------------------------------------------------------------ evaluation
    def _build_groups(self) -> None:
        """Plans the op calls: every unpaired fused block goes into one call (one jet over the
        union of their points); paired blocks go into one call per paired point set. A call
        holds at most MAX_RESIDUALS residuals."""
        groups: list[list[BoundBlock]] = []
        self._torch_blocks: list[BoundBlock] = []
        for b in self.bound.values():
            if not b.fused:
                self._torch_blocks.append(b)
                continue
            for g in groups:
                first = g[0]
                fits = sum(o.block.n_res for o in g) + b.block.n_res <= MAX_RESIDUALS
                same_points = first.x.shape == b.x.shape and (
                    first.x is b.x or torch.equal(first.x, b.x)
                )
                if (
                    fits
                    and first.block.paired == b.block.paired
                    and (not b.block.paired or same_points)
                ):
                    g.append(b)
                    break
            else:
                groups.append([b])
        self._groups = [_Group(bs, self.dtype, self.device) for bs in groups]
        # one group per fused block, built by residual_terms on first use (Gauss-Newton calls
        # it every iteration)
        self._single_groups: dict[str, _Group] = {}

    def _lam_mu(self, t: Block) -> tuple[Tensor, Tensor]:
        """lam ([N, R] or [R]) and mu [R] of one block."""
        if isinstance(t, Objective):
            lam = torch.full((t.n_res,), t.weight, dtype=self.dtype, device=self.device)
            return lam, torch.zeros(t.n_res, dtype=self.dtype, device=self.device)
        st = self._state[t.name]
        return st["lam"], st["mu"]

    def _group_lam_mu(self, g: _Group) -> tuple[Tensor, Tensor]:
        """The op's lam ([N, R] or [R]) and mu [R] of one group, from its blocks'."""
        pieces = [self._lam_mu(b.block) for b in g.blocks]
        mu = torch.cat([p[1] for p in pieces])
        prog = g.program
        if prog.segmented:  # lam on each block's rows, 0 elsewhere (its residuals vanish there)
            lam = torch.zeros(g.n, prog.n_res, dtype=self.dtype, device=self.device)
            for (lam_b, _), (_, r0, r1, c0, c1) in zip(pieces, prog.slices, strict=True):
                lam[r0:r1, c0:c1] = lam_b
        elif any(p[0].dim() == 2 for p in pieces):
            lam = torch.cat([p[0].expand(g.n, -1) for p in pieces], -1)
        else:
            lam = torch.cat([p[0] for p in pieces])
        return lam, mu

    def _group_loss(
        self, g: _Group, spec: MlpSpec | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        spec = mlp_spec(self.model) if spec is None else spec
        lam, mu = self._group_lam_mu(g)
        program = g.program
        if self.unknowns is not None:
            program = program.with_unknowns(self.unknowns.values())
        loss, c = ops.block_loss(program, g.x, spec, lam, mu, backend=self.backend)
        return loss, g.split(c)

    def _flags(self, t: Block) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """lam, mu, squared [R] and red [R] of one block (for the torch path)."""
        lam, mu = self._lam_mu(t)
        sq, red = forms_and_reductions(t, self.dtype, self.device)
        return lam, mu, sq, red

    def _torch_block_loss(
        self, b: BoundBlock, spec: MlpSpec | None = None
    ) -> tuple[Tensor, Tensor]:
        """A non-polynomial block: residuals in torch on top of the (fused) jet."""
        spec = mlp_spec(self.model) if spec is None else spec
        lam, mu, sq, red = self._flags(b.block)
        y, jac = ops.mlp_jet(b.x, spec, self.backend)
        r = b.residuals_torch(y, jac, self.unknowns.env() if self.unknowns is not None else None)
        c = torch.where(sq != 0, r * r, r)
        return (red * (lam * c + 0.5 * mu * c * c)).sum(), c.detach()

    def _evaluate(self, spec: MlpSpec | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss (differentiable where gradients are enabled: through the ops' autograd
        formulas) and C per block."""
        spec = mlp_spec(self.model) if spec is None else spec
        total = None
        values: dict[str, Tensor] = {}
        for g in self._groups:
            loss, cs = self._group_loss(g, spec)
            values.update(cs)
            total = loss if total is None else total + loss
        for b in self._torch_blocks:
            loss, c = self._torch_block_loss(b, spec)
            values[b.block.name] = c
            total = loss if total is None else total + loss
        return total, values

    def __call__(self) -> Tensor:
        total, _ = self._evaluate()
        self._last_loss = total.detach()
        return total

    def evaluate(self, backward: bool = False) -> Evaluation:
        """The loss and the constraint values C at the current parameters and multipliers.

        With ``backward=True`` the loss's parameter gradient is also accumulated into each
        parameter's ``.grad``, as ``loss = al(); loss.backward()`` does (an optimizer's closure
        after zero_grad), with bitwise the same loss and gradients. Where every block is fused
        and nothing but the parameters needs a gradient, the fused op's gradients go to
        ``.grad`` directly, without building or running an autograd graph; otherwise it runs
        exactly that autograd sequence (also where a parameter has a hook, see
        :func:`_hooks_on`).

        Args:
            backward: Whether to accumulate the gradient into ``.grad``; without it nothing is
                differentiated and nothing is recorded.

        Returns:
            The :class:`~fluxkern.evaluation.Evaluation`, to hand to :meth:`update_multipliers`
            when the parameters are still those it was made at.

        Raises:
            RuntimeError: backward=True and nothing requires grad (as loss.backward() raises),
                or an input besides the parameters requires grad on a fused backend.
        """
        spec = mlp_spec(self.model)
        if not backward:
            with torch.no_grad():
                total, values = self._evaluate(spec)
        elif self._gradients_without_autograd(spec):
            total, values = self._fused_loss_and_backward(spec)
        else:
            total, values = self._evaluate(spec)
            total.backward()
        total = total.detach()
        if backward:
            self._last_loss = total
        values = {k: v.detach() if v.requires_grad else v for k, v in values.items()}
        return Evaluation(total, values, backward, self._token)

    def loss_and_backward(self) -> Tensor:
        """``evaluate(backward=True).loss``: the loss (detached), its parameter gradient
        accumulated into ``.grad``."""
        return self.evaluate(backward=True).loss

    def _fused_loss_and_backward(self, spec: MlpSpec) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss and C of every (fused) group from one op call each outside autograd, their
        parameter gradients accumulated into ``.grad`` as autograd's engine would."""
        total: Tensor | None = None
        values: dict[str, Tensor] = {}
        grads: list[list[Tensor]] = []
        for g in self._groups:
            lam, mu = self._group_lam_mu(g)
            loss, c, grad = ops.fused_loss_and_grads(g.program, g.x, spec, lam, mu)
            values.update(g.split(c))
            total = loss if total is None else total + loss
            grads.append(grad)
        assert total is not None
        # summed in the order autograd's engine sums them: the last group's gradient first
        acc = grads[-1]
        for grad in reversed(grads[:-1]):
            acc = torch._foreach_add(acc, grad)  # acc[i] + grad[i], one dispatch
        for (p, factor), gp in zip(gradient_targets(self.model, spec), acc, strict=True):
            if not p.requires_grad:
                continue
            if factor is not None:  # an output-scaled last layer: d(W c)/dW = c
                gp = gp * factor
            if p.grad is None:
                p.grad = gp
            else:
                p.grad.add_(gp)
        return total, values

    def _gradients_without_autograd(self, spec: MlpSpec) -> bool:
        """Whether evaluate(backward=True) may skip autograd: only fused groups on a fused
        backend, an eager call with gradients on, some parameter requiring grad and every one
        a leaf without hooks (:func:`_hooks_on`), and no other input requiring grad (the
        registered formula refuses those with an error that this must not hide)."""
        if (
            self.backend == "torch"
            or self.unknowns is not None  # their gradient goes through autograd
            or self._torch_blocks
            or not self._groups
            or not torch.is_grad_enabled()
            or torch.compiler.is_compiling()
        ):
            return False
        params = [p for p, _ in gradient_targets(self.model, spec)]
        if not any(p.requires_grad for p in params):
            return False  # loss.backward() raises then; so does the autograd route
        if any(not p.is_leaf or _hooks_on(p) for p in params):
            return False
        others = [spec.shift, spec.scale]
        for g in self._groups:
            others += [g.x, g.program.cols, g.program.coef]
        others += [v for s in self._state.values() for v in (s["lam"], s["mu"])]
        return not any(t.requires_grad for t in others)

    def losses(self) -> dict[str, float]:
        """Each block's loss at the current parameters (no gradient; one op call per block)."""
        out = {}
        with torch.no_grad():
            for name, b in self.bound.items():
                if b.fused:
                    out[name] = float(self._group_loss(_Group([b], self.dtype, self.device))[0])
                else:
                    out[name] = float(self._torch_block_loss(b)[0])
        return out

    def constraint_values(self) -> dict[str, Tensor]:
        """C [N, R] per constraint at the current parameters."""
        values = self.evaluate().values
        return {k: v for k, v in values.items() if k in self._state}

    def _current(self, evaluation: Evaluation | None) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss and C at the current parameters and multipliers: the evaluation's, when
        given (the caller vouches for the parameters; the multipliers are checked by token),
        else evaluated now. Bitwise the same numbers either way."""
        if evaluation is None:
            evaluation = self.evaluate()
        elif evaluation.token is not self._token:
            raise ValueError(
                "update_multipliers: the evaluation was made with other multipliers or blocks "
                "(of another AugmentedLagrangian, or before an update_multipliers, set_terms or "
                "load_state_dict); evaluate again, or pass None"
            )
        return evaluation.loss, dict(evaluation.values)

    def update_multipliers(self, evaluation: Evaluation | None = None) -> dict[str, Tensor]:
        """Applies the dual rule with C at the current parameters; returns those C.

        Args:
            evaluation: An :meth:`evaluate` result made at the current parameters, whose loss
                and C are then used instead of evaluating again (bitwise the same numbers), or
                None to evaluate now. This object cannot see whether the parameters moved
                since: handing it one made elsewhere applies the rule with C from there.
                (fluxkern's Trainer hands it the last closure evaluation of a step when the
                optimizer reports that evaluation at the step's result.)

        Raises:
            ValueError: The evaluation was made before the multipliers or blocks changed (an
                update, set_terms, load_state_dict) or by another AugmentedLagrangian.
        """
        loss, values = self._current(evaluation)
        self._token = object()  # the multipliers change: earlier evaluations are stale
        with torch.no_grad():
            total = float(loss)
            for name, state in self._state.items():
                t = self.bound[name].block
                c = values[name]
                if t.multiplier == "global":
                    c = c.mean(0) if t.reduction == "mean" else c.sum(0)
                c = t.within_tolerance(c)  # noisy data: no update within the tolerance
                self.rule.update(state, c, total)
        return values

    def residual_terms(self) -> list[ResidualTerm]:
        """Each block's raw residuals, their parameter Jacobian and the loss's first and second
        derivatives per residual row (:mod:`fluxkern.residual_terms`), at the current
        parameters: what a Gauss-Newton step needs. Fused blocks use
        ``fluxkern.ops.residual_jacobian`` (its kernel where the build has one, else its twin),
        other blocks torch.func.jacrev over their torch evaluation.

        Returns:
            One ResidualTerm per block, in the order of :attr:`terms`; with unknowns, each
            jac has one more column per unknown parameter (in ``model.unknowns`` order).
        """
        spec = mlp_spec(self.model)
        out = []
        for t in self.terms:
            b = self.bound[t.name]
            if b.fused:
                g = self._single_groups.get(t.name)
                if g is None:
                    g = self._single_groups[t.name] = _Group([b], self.dtype, self.device)
                backend = "torch" if self.backend == "torch" else None
                program = g.program
                if self.unknowns is not None:
                    with torch.no_grad():
                        program = program.with_unknowns(self.unknowns.values())
                r, jac = ops.residual_jacobian(program, g.x, spec, backend=backend)
                if self.unknowns is not None:  # columns of the unknowns' parameters
                    jac = torch.cat([jac, unknown_columns(g.program, g.x, spec, self.unknowns)], -1)
            else:
                r, jac = torch_residual_jacobian(b, spec, self.unknowns)
            lam, mu, sq, red = self._flags(t)
            fp, fs, clamped = loss_derivatives(r, lam, mu, sq, red)
            out.append(ResidualTerm(t.name, r, jac, fp, fs, clamped))
        return out
