"""The benchmark problems of PROBLEMS.md, each in flux form with its PINN baseline."""

from __future__ import annotations

from fluxkern.problems.base import EvalGrid, Problem, relative_l2
from fluxkern.problems.cavity import Cavity
from fluxkern.problems.composite_heat import CompositeHeat
from fluxkern.problems.convection import Convection
from fluxkern.problems.convection_diffusion import ConvectionDiffusion
from fluxkern.problems.helmholtz import Helmholtz
from fluxkern.problems.poisson import Poisson
from fluxkern.problems.stokes import Stokes

__all__ = ["EvalGrid", "Problem", "get", "names", "register", "relative_l2"]

_REGISTRY: dict[str, type[Problem]] = {}


def register(cls: type[Problem]) -> type[Problem]:
    """Adds a Problem subclass to the registry under cls.name."""
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    """The registered problem names, in registration order."""
    return list(_REGISTRY)


def get(name: str) -> Problem:
    """A fresh instance of the problem called `name`.

    Raises:
        KeyError: Unknown name (the message lists the valid ones).
    """
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise KeyError(f"unknown problem {name!r}; choose from {', '.join(names())}") from None


register(Poisson)
register(CompositeHeat)
register(Convection)
register(ConvectionDiffusion)
register(Stokes)
register(Cavity)
register(Helmholtz)
