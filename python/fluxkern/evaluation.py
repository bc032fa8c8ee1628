"""What one evaluation of the augmented-Lagrangian loss gives: :class:`Evaluation`.

:meth:`fluxkern.AugmentedLagrangian.evaluate` returns one: the loss, the constraint values C of
every block and whether the parameter gradient went into ``.grad``. The dual update needs C at
the parameters a primal step ends on. An optimizer's last loss evaluation is often made there
(after an L-BFGS step whose line search accepts its last trial), so whoever ran the step and
knows that hands that evaluation to :meth:`fluxkern.AugmentedLagrangian.update_multipliers`
instead of evaluating once more (one of the ~22 evaluations of an epoch; fluxkern's Trainer does
so when the optimizer reports ``last_closure_at_result``, see :mod:`fluxkern.optim`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor

__all__ = ["Evaluation"]


@dataclass(frozen=True)
class Evaluation:
    """One evaluation's loss and constraint values.

    An evaluation does not record the parameters it was made at: the caller knows whether they
    have changed since (an optimizer moves them in place), and
    :meth:`fluxkern.AugmentedLagrangian.update_multipliers` takes an evaluation only on the
    caller's word that they have not.

    Attributes:
        loss: The loss (a scalar; detached).
        values: C [N, R] per block name (detached).
        backward: Whether the evaluation accumulated the loss's parameter gradient into each
            parameter's ``.grad``.
        token: The multiplier state it was made with: the AugmentedLagrangian issues a new token
            whenever its multipliers, penalties or blocks change (update_multipliers,
            set_terms, load_state_dict), so an evaluation made before such a change is
            recognised and refused.
    """

    loss: Tensor
    values: Mapping[str, Tensor]
    backward: bool
    token: object
