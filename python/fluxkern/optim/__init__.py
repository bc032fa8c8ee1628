"""Optimizers for fluxkern's losses (usable with any torch module and closure).

- :class:`LBFGS`: torch.optim.LBFGS's algorithm and options with the two-loop recursion fused
  into one op call (what ``fluxkern.solve`` uses for ``optimizer="lbfgs"``).
- :class:`SSBFGS`, :class:`SSBroyden`: dense self-scaled quasi-Newton updates (float64 inverse
  Hessian, strong-Wolfe line search; P <= 20000 parameters).
- :class:`GaussNewton`: Levenberg-Marquardt on the generalised Gauss-Newton model of an
  AugmentedLagrangian (per-residual Jacobians, float64 Cholesky).

``fluxkern.optim.by_name`` builds them from ``fluxkern.solve``'s option names.
"""

from fluxkern.optim.gauss_newton import GaussNewton
from fluxkern.optim.lbfgs import LBFGS
from fluxkern.optim.quasi_newton import SSBFGS, SSBroyden

__all__ = ["GaussNewton", "LBFGS", "SSBFGS", "SSBroyden"]
