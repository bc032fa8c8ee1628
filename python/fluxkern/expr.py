"""Residual expressions: symbols for inputs, outputs and data, first derivatives, polynomials.

An expression is kept as a polynomial (a dict from monomials to coefficients) whenever it is one;
a monomial is a sorted tuple of atoms:

    ("x", j)      input column j              (a coefficient factor: not differentiated)
    ("c", name)   per-point data column       (a coefficient factor)
    ("k", name)   trainable unknown constant  (a coefficient factor; fluxkern.unknown)
    ("y", o)      network output o            (a field factor)
    ("J", o, j)   d output o / d input j      (a field factor)

Polynomials of field degree <= 3 compile to the fused kernel's monomial table. sin, cos, exp and
tanh of an expression make a non-polynomial expression, evaluated in torch on top of the jet.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import NoReturn

import torch
from torch import Tensor

__all__ = [
    "Expr",
    "Symbol",
    "cos",
    "data",
    "exp",
    "inputs",
    "outputs",
    "sin",
    "tanh",
]

Atom = tuple
Monomial = tuple  # sorted tuple of atoms
Number = int | float

MAX_POWER = 8


def _is_field(atom: Atom) -> bool:
    return atom[0] in ("y", "J")


def _mono_mul(a: Monomial, b: Monomial) -> Monomial:
    return tuple(sorted(a + b, key=repr))


class Expr:
    """A residual expression. Build with +, -, *, / by numbers, ** small integers, .d(input)."""

    __array_priority__ = 1000  # numpy scalars defer to our operators

    def __init__(self, poly: dict[Monomial, float] | None = None, node: tuple | None = None):
        # exactly one of poly (polynomial form) or node (operation tree) is set
        self._poly = poly
        self._node = node
        self._symbols: dict[str, Symbol] = {}

    # ------------------------------------------------------------------ structure
    @property
    def is_polynomial(self) -> bool:
        """True when the expression is a polynomial in inputs, outputs, derivatives and data."""
        return self._poly is not None

    def polynomial(self) -> dict[Monomial, float]:
        """The monomial -> coefficient dict (only for polynomial expressions)."""
        if self._poly is None:
            raise ValueError(f"{self} is not a polynomial")
        return dict(self._poly)

    def field_degree(self) -> int:
        """Largest number of output/derivative factors in one monomial (0 for non-polynomials)."""
        if self._poly is None:
            return 0
        return max((sum(_is_field(a) for a in m) for m in self._poly), default=0)

    def symbols(self) -> dict[str, Symbol]:
        """Every symbol the expression uses, by name."""
        return dict(self._symbols)

    # ------------------------------------------------------------------ arithmetic
    @staticmethod
    def _lift(other: Expr | Number) -> Expr:
        if isinstance(other, Expr):
            return other
        if isinstance(other, bool) or not isinstance(other, numbers.Real):
            if isinstance(other, Tensor) and other.numel() == 1:
                other = float(other)
            else:
                raise TypeError(
                    f"cannot combine an expression with {type(other).__name__}; use numbers, "
                    "expressions or fluxkern.data(...) symbols for per-point values"
                )
        e = Expr({(): float(other)} if other != 0 else {})
        return e

    def _merge_symbols(self, *others: Expr) -> dict[str, Symbol]:
        out = dict(self._symbols)
        for o in others:
            for name, sym in o._symbols.items():
                if name in out and not out[name]._same(sym):
                    raise ValueError(
                        f"two different symbols are named {name!r} ({out[name].kind} and "
                        f"{sym.kind}); use distinct names"
                    )
                out[name] = sym
        return out

    def _combine(self, other: Expr, op: str) -> Expr:
        syms = self._merge_symbols(other)
        if self._poly is not None and other._poly is not None:
            if op == "+":
                poly = dict(self._poly)
                for m, c in other._poly.items():
                    poly[m] = poly.get(m, 0.0) + c
            else:  # "*"
                poly = {}
                for ma, ca in self._poly.items():
                    for mb, cb in other._poly.items():
                        m = _mono_mul(ma, mb)
                        poly[m] = poly.get(m, 0.0) + ca * cb
            out = Expr({m: c for m, c in poly.items() if c != 0.0})
        else:
            out = Expr(node=(op, self, other))
        out._symbols = syms
        return out

    def __add__(self, other):
        return self._combine(self._lift(other), "+")

    def __radd__(self, other):
        return self._lift(other)._combine(self, "+")

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-self._lift(other))

    def __rsub__(self, other):
        return self._lift(other) + (-self)

    def __mul__(self, other):
        return self._combine(self._lift(other), "*")

    def __rmul__(self, other):
        return self._lift(other)._combine(self, "*")

    def __truediv__(self, other):
        if isinstance(other, Expr):
            raise TypeError(
                "division by an expression is not supported; multiply by a data column instead"
            )
        if other == 0:
            raise ZeroDivisionError("expression divided by zero")
        return self * (1.0 / other)

    def __pow__(self, n):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= MAX_POWER:
            raise ValueError(f"** takes a small positive integer (1..{MAX_POWER}), got {n!r}")
        out = self
        for _ in range(int(n) - 1):
            out = out * self
        return out

    def d(self, inp: Symbol) -> Expr:
        """First derivative d self / d inp; defined for a network output symbol only."""
        raise ValueError(
            f"d() is defined for a network output symbol (from fluxkern.outputs), not for {self}; "
            "derivatives of derivatives are not first-order: add a flux output instead"
        )

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, env: Mapping[str, Tensor], y: Tensor, jac: Tensor, x: Tensor) -> Tensor:
        """Values at every point, in torch.

        Args:
            env: Data columns by name, each [P].
            y: Network outputs [P, m].
            jac: Input Jacobian [P, m, d].
            x: Points [P, d].

        Returns:
            The expression's values [P].
        """
        if self._poly is not None:
            total = torch.zeros(x.shape[0], dtype=y.dtype, device=y.device)
            for mono, coef in self._poly.items():
                term = torch.full_like(total, coef)
                for atom in mono:
                    term = term * _atom_value(atom, env, y, jac, x, self._symbols)
                total = total + term
            return total
        op, *args = self._node
        if op in ("+", "*"):
            a = args[0].evaluate(env, y, jac, x)
            b = args[1].evaluate(env, y, jac, x)
            return a + b if op == "+" else a * b
        return _FUNCS[op][0](args[0].evaluate(env, y, jac, x))

    def __repr__(self) -> str:
        if self._poly is not None:
            if not self._poly:
                return "0"
            parts = []
            for mono, c in self._poly.items():
                names = "*".join(_atom_name(a, self._symbols) for a in mono)
                if not names:
                    parts.append(f"{c:g}")
                elif c == 1.0:
                    parts.append(names)
                else:
                    parts.append(f"{c:g}*{names}")
            return " + ".join(parts)
        op, *args = self._node
        if op in ("+", "*"):
            return f"({args[0]!r} {op} {args[1]!r})"
        return f"{op}({args[0]!r})"

    def __bool__(self):
        raise TypeError("an expression has no truth value; compare values after evaluation")


# The key under which an evaluation's env holds the value of the unknown NAME (a 0-d tensor).
UNKNOWN_KEY = "unknown:{}"


def _atom_value(
    atom: Atom,
    env: Mapping[str, Tensor],
    y: Tensor,
    jac: Tensor,
    x: Tensor,
    syms: Mapping[str, Symbol] | None = None,
) -> Tensor:
    kind = atom[0]
    if kind == "y":
        return y[:, atom[1]]
    if kind == "J":
        return jac[:, atom[1], atom[2]]
    if kind == "x":
        return x[:, atom[1]]
    if kind == "k":
        key = UNKNOWN_KEY.format(atom[1])
        if key in env:
            return env[key]
        # else the value held by the model that last attached the unknown (fluxkern.unknowns)
        sym = (syms or {}).get(atom[1])
        current = getattr(sym, "current_value", None)
        value = current() if current is not None else None
        if value is None:
            raise ValueError(
                f"the unknown {atom[1]!r} has no value here; evaluate through an "
                "AugmentedLagrangian, which owns the unknowns' parameters"
            )
        return value.to(y.dtype)
    return env[atom[1]]


def _atom_name(atom: Atom, syms: Mapping[str, Symbol]) -> str:
    def name_of(kind, index):
        for s in syms.values():
            if s.kind == kind and s.index == index:
                return s.name
        return f"{kind}{index}"

    if atom[0] == "y":
        return name_of("output", atom[1])
    if atom[0] == "J":
        return f"{name_of('output', atom[1])}.d({name_of('input', atom[2])})"
    if atom[0] == "x":
        return name_of("input", atom[1])
    return atom[1]  # data column or unknown: its name


class Symbol(Expr):
    """An input column, a network output or a per-point data column.

    Attributes:
        kind: "input", "output", "data" or "unknown" (a trainable constant, fluxkern.unknown).
        name: Its name.
        index: Its column (inputs) or output number, its place in `group`.
        group: The names made in the same call (``fluxkern.outputs("u q")``: ("u", "q")).
    """

    def __init__(self, kind: str, name: str, index: int, group: tuple[str, ...] = ()):
        atom: Atom = {
            "input": ("x", index),
            "output": ("y", index),
            "data": ("c", name),
            "unknown": ("k", name),
        }[kind]
        super().__init__({(atom,): 1.0})
        self.kind = kind
        self.name = name
        self.index = index
        # the names made together with this one (fluxkern.outputs("u q") -> ("u", "q")): the
        # order a problem's declared names must follow
        self.group = group or (name,)
        self._symbols = {name: self}

    def _same(self, other: Symbol) -> bool:
        if self.kind == "data":  # data columns are looked up by name only
            return other.kind == "data" and other.name == self.name
        return (self.kind, self.name, self.index) == (other.kind, other.name, other.index)

    def d(self, inp: Symbol) -> Expr:
        """d self / d inp: the first derivative of a network output with respect to an input."""
        if self.kind != "output":
            raise ValueError(
                f"d() is defined for network outputs only; {self.name!r} is "
                f"{'an' if self.kind in ('input', 'unknown') else 'a'} {self.kind} symbol"
            )
        if not isinstance(inp, Symbol) or inp.kind != "input":
            what = f"{inp.kind} symbol {inp.name!r}" if isinstance(inp, Symbol) else repr(inp)
            raise ValueError(
                f"{self.name}.d(...) needs an input symbol (from fluxkern.inputs), got {what}"
            )
        out = Expr({(("J", self.index, inp.index),): 1.0})
        out._symbols = self._merge_symbols(inp)
        return _Derivative(out, self, inp)

    def __repr__(self) -> str:
        return self.name

    def __iter__(self) -> NoReturn:
        # `x, = fk.inputs("x")` would otherwise fail with "cannot unpack non-iterable Symbol"
        fn = {"input": "inputs", "output": "outputs", "data": "data", "unknown": "unknown"}[
            self.kind
        ]
        raise TypeError(
            f"fluxkern.{fn}({self.name!r}) is one symbol, not a tuple: write "
            f"{self.name} = fluxkern.{fn}({self.name!r}), or fluxkern.{fn}({self.name + ','!r}) "
            "for a tuple of one"
        )


class _Derivative(Expr):
    """u.d(x): an expression whose .d() raises the 'derivative of a derivative' error."""

    def __init__(self, e: Expr, out: Symbol, inp: Symbol):
        super().__init__(e._poly)
        self._symbols = e._symbols
        self._what = f"{out.name}.d({inp.name})"

    def d(self, inp: Symbol) -> Expr:
        raise ValueError(
            f"{self._what}.d(...) is a second derivative; fluxkern residuals are first-order: add "
            "an auxiliary flux output (e.g. q = u.d(x)) and constrain it instead"
        )


def _symbols(kind: str, names: str) -> Symbol | tuple[Symbol, ...]:
    if not isinstance(names, str) or not names.replace(",", " ").split():
        raise ValueError(f"give {kind} names as one string, e.g. 'x y'; got {names!r}")
    parts = names.replace(",", " ").split()
    if len(set(parts)) != len(parts):
        raise ValueError(f"duplicate {kind} names in {names!r}")
    for p in parts:
        if not p.isidentifier():
            raise ValueError(f"{kind} name {p!r} is not an identifier")
    syms = tuple(Symbol(kind, p, i, tuple(parts)) for i, p in enumerate(parts))
    one_tuple = names.rstrip().endswith(",")  # "x," asks for a 1-tuple, as in sympy.symbols
    return syms[0] if len(syms) == 1 and not one_tuple else syms


def inputs(names: str) -> Symbol | tuple[Symbol, ...]:
    """Input-column symbols, in column order (like sympy.symbols: one name, one symbol).

    ``x = inputs("x")`` gives one symbol and ``x, t = inputs("x t")`` a tuple; a trailing comma
    asks for a tuple of one (``x, = inputs("x,")``). Unpacking a single symbol
    (``x, = inputs("x")``) raises a TypeError that says so.

    Args:
        names: Space- or comma-separated names, e.g. "x y" or "x t".

    Returns:
        One Symbol (one name, no trailing comma), or a tuple of them.
    """
    return _symbols("input", names)


def outputs(names: str) -> Symbol | tuple[Symbol, ...]:
    """Network-output symbols, in output order, e.g. outputs("u qx qy")."""
    return _symbols("output", names)


def data(names: str) -> Symbol | tuple[Symbol, ...]:
    """Per-point data symbols, supplied by name with the points of each block."""
    return _symbols("data", names)


_FUNCS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[float], float]]] = {
    "sin": (torch.sin, math.sin),
    "cos": (torch.cos, math.cos),
    "exp": (torch.exp, math.exp),
    "tanh": (torch.tanh, math.tanh),
}


def _func(name: str, arg: Expr | Number) -> Expr:
    if not isinstance(arg, Expr):
        return Expr._lift(_FUNCS[name][1](float(arg)))
    if arg._poly is not None and set(arg._poly) <= {()}:  # a constant
        return Expr._lift(_FUNCS[name][1](arg._poly.get((), 0.0)))
    out = Expr(node=(name, arg))
    out._symbols = dict(arg._symbols)
    return out


def sin(e: Expr | Number) -> Expr:
    """sin of an expression (non-polynomial: evaluated in torch on top of the jet)."""
    return _func("sin", e)


def cos(e: Expr | Number) -> Expr:
    """cos of an expression (non-polynomial: evaluated in torch on top of the jet)."""
    return _func("cos", e)


def exp(e: Expr | Number) -> Expr:
    """exp of an expression (non-polynomial: evaluated in torch on top of the jet)."""
    return _func("exp", e)


def tanh(e: Expr | Number) -> Expr:
    """tanh of an expression (non-polynomial: evaluated in torch on top of the jet)."""
    return _func("tanh", e)
