"""Optimizers for fluxkern's losses (usable with any torch module and closure).

- :class:`LBFGS`: torch.optim.LBFGS's algorithm and options with the two-loop recursion fused
  into one op call (what ``fluxkern.solve`` uses for ``optimizer="lbfgs"``).
"""

from fluxkern.optim.lbfgs import LBFGS

__all__ = ["LBFGS"]
