"""Trainable unknown constants of the equations (inverse problems).

``k = fluxkern.unknown("k", init=1.0, positive=True)`` is a symbol that expressions use like a
number: ``u.d(t) - k * q.d(x)``. It is a coefficient factor of the monomials it multiplies, so a
polynomial residual stays fused: the compiled table's coefficient of such a monomial is its
constant times a product of unknowns (:meth:`fluxkern.program.ResidualProgram.with_unknowns`),
and the fused op returns dL/dcoef in the same pass (``coef_grad``), which autograd chains to the
unknowns. Non-polynomial expressions (sin, exp, ...) read the unknowns' values through plain
autograd.

The values live in an :class:`UnknownSet`, a module that an AugmentedLagrangian attaches to its
model as ``model.unknowns`` (so that ``model.parameters()``, every optimizer, state_dict,
checkpoints and resume carry them). A positive unknown is stored as s with value exp(s).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from fluxkern.expr import UNKNOWN_KEY, Expr, Symbol

__all__ = ["ATTRIBUTE", "Unknown", "UnknownSet", "attach_unknowns", "unknown", "unknowns_of"]

#: The attribute of the model that holds its UnknownSet.
ATTRIBUTE = "unknowns"


class Unknown(Symbol):
    """A trainable scalar in residual expressions (made by :func:`unknown`).

    Attributes:
        name: Its name (the key in results, history and checkpoints).
        init: Its initial value.
        positive: Whether it is kept positive (stored as log value).
        truth: The true value where known (for the error report), else None.
    """

    def __init__(self, name: str, init: float, positive: bool, truth: float | None) -> None:
        super().__init__("unknown", name, 0)
        self.init = init
        self.positive = positive
        self.truth = truth
        self._owner: weakref.ref[UnknownSet] | None = None

    def current_value(self) -> Tensor | None:
        """The value in the UnknownSet that last took this symbol (the model of the latest
        AugmentedLagrangian built with it), or None: what expression evaluation falls back to
        where its caller passes no values (e.g. a check on fresh points)."""
        owner = self._owner() if self._owner is not None else None
        if owner is None or self.name not in owner.raw:
            return None
        return owner.value(self.name)

    def _same(self, other: Symbol) -> bool:
        if not isinstance(other, Unknown):
            return False
        return (other.name, other.init, other.positive) == (self.name, self.init, self.positive)


def unknown(
    name: str, init: float = 1.0, positive: bool = False, truth: float | None = None
) -> Unknown:
    """A trainable constant for residual expressions, identified together with the network.

    Args:
        name: An identifier, unique among the problem's symbols.
        init: The initial value (> 0 when positive).
        positive: Keep it positive: it is optimised as s with value exp(s) (relative steps).
        truth: The true value, if known: results report the identified value's relative error.

    Returns:
        The symbol (use it in expressions like a number).

    Raises:
        ValueError: A name that is not an identifier, a non-finite init, or positive with
            init <= 0.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"fluxkern.unknown: name must be an identifier, got {name!r}")
    if isinstance(init, bool) or not isinstance(init, (int, float)) or not math.isfinite(init):
        raise ValueError(f"fluxkern.unknown({name!r}): init must be a finite number, got {init!r}")
    if positive and init <= 0:
        raise ValueError(f"fluxkern.unknown({name!r}): positive=True needs init > 0, got {init}")
    return Unknown(name, float(init), bool(positive), None if truth is None else float(truth))


def unknowns_of(exprs: Iterable[Expr]) -> dict[str, Unknown]:
    """The unknowns that expressions use, by name, in order of first use.

    Raises:
        ValueError: Two different unknowns (init or positivity) share a name.
    """
    out: dict[str, Unknown] = {}
    for e in exprs:
        for sym in e.symbols().values():
            if isinstance(sym, Unknown):
                old = out.setdefault(sym.name, sym)
                if not old._same(sym):
                    raise ValueError(
                        f"two unknowns are named {sym.name!r} with different init or positivity"
                    )
    return out


class UnknownSet(nn.Module):
    """The parameters of a problem's unknowns: raw values s, value exp(s) (positive) or s.

    Args:
        unknowns: The unknown symbols.
        dtype: Parameter dtype.
        device: Parameter device.
    """

    def __init__(
        self,
        unknowns: Iterable[Unknown],
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.raw = nn.ParameterDict()
        self.symbols: dict[str, Unknown] = {}
        self._factory = {"dtype": dtype, "device": device}
        self.add(unknowns)

    def add(self, unknowns: Iterable[Unknown]) -> None:
        """Adds parameters for unknowns not held yet (at their initial values).

        Raises:
            ValueError: One has the name of a held unknown with another init or positivity.
        """
        for u in unknowns:
            held = self.symbols.get(u.name)
            u._owner = weakref.ref(self)
            if held is not None:
                if not held._same(u):
                    raise ValueError(
                        f"the model already has an unknown {u.name!r} with another init or "
                        "positivity"
                    )
                continue
            start = math.log(u.init) if u.positive else u.init
            self.raw[u.name] = nn.Parameter(torch.tensor(start, **self._factory))
            self.symbols[u.name] = u

    @property
    def names(self) -> list[str]:
        """The unknowns' names, in order."""
        return list(self.raw.keys())

    def value(self, name: str) -> Tensor:
        """One unknown's value (0-d, differentiable with respect to its parameter)."""
        raw = self.raw[name]
        return raw.exp() if self.symbols[name].positive else raw

    def values(self) -> dict[str, Tensor]:  # type: ignore[override]
        """Every unknown's value by name (0-d tensors, differentiable)."""
        return {n: self.value(n) for n in self.raw.keys()}

    def env(self) -> dict[str, Tensor]:
        """The values under the keys that expression evaluation reads."""
        return {UNKNOWN_KEY.format(n): v for n, v in self.values().items()}

    def floats(self) -> dict[str, float]:
        """Every unknown's current value as a float."""
        with torch.no_grad():
            return {n: float(v) for n, v in self.values().items()}

    def errors(self) -> dict[str, float]:
        """|value - truth| / |truth| of every unknown whose truth is known."""
        out = {}
        for n, v in self.floats().items():
            truth = self.symbols[n].truth
            if truth is not None:
                out[n] = abs(v - truth) / abs(truth) if truth != 0 else abs(v)
        return out


def attach_unknowns(
    model: nn.Module, unknowns: Mapping[str, Unknown], dtype: torch.dtype, device: torch.device
) -> UnknownSet | None:
    """The model's UnknownSet (``model.unknowns``), created or extended with these unknowns.

    Args:
        model: The network (a fluxkern.MLP).
        unknowns: The unknowns by name.
        dtype: Their dtype.
        device: Their device.

    Returns:
        The set, or None when there are no unknowns and the model holds none.

    Raises:
        TypeError: The model is not a fluxkern.MLP (an nn.Sequential cannot hold them).
    """
    held = getattr(model, ATTRIBUTE, None)
    if isinstance(held, UnknownSet):
        held.add(unknowns.values())
        return held
    if not unknowns:
        return None
    from fluxkern.nn import MLP

    if not isinstance(model, MLP):
        raise TypeError(
            f"unknowns ({', '.join(unknowns)}) need a fluxkern.MLP model, got "
            f"{type(model).__name__}"
        )
    sset = UnknownSet(unknowns.values(), dtype=dtype, device=device)
    model.add_module(ATTRIBUTE, sset)
    return sset
