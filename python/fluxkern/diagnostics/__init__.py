"""Diagnostics: gradient sensitivity per derivative order, and loss landscapes of trained runs.

gradient_sensitivity(problem) measures, on one network at initialisation and one set of points,
how noisy the back-propagated parameter gradient is for three losses of increasing derivative
order:

    order 0: mean squared error of u against the exact solution (no derivative of the network);
    order 1: the flux form's augmented-Lagrangian loss with the initial multipliers (first
             derivatives only);
    order 2: the PINN form's loss (second derivatives by autograd).

All three are evaluated on the flux form's network (outputs u, fluxes...); the PINN loss reads the
PINN outputs (u) from it through a small adapter module. It reports the relative change of the
gradient under random weight perturbations and under a smooth-plus-rough perturbation added to
the network output, and per-layer statistics of the gradient (variance, kurtosis, cosine between
two independent draws of the collocation points).

loss_landscape(run_dir) loads a trained run (model.pt), freezes its multipliers and evaluates the
full training loss on a grid over two filter-normalised random directions.

Modules (one job each; import the public names from ``fluxkern.diagnostics``):
    * ``common``: resolving a problem, and rebuilding a trained run from model.pt;
    * ``perturbation``: the smooth-plus-rough output perturbation;
    * ``losses``: the order 0, 1 and 2 losses on one network, and the parameter gradient;
    * ``gradients``: gradient_sensitivity;
    * ``landscape``: loss_landscape.
The figures are drawn by :mod:`fluxkern.plots`.
"""

from __future__ import annotations

from fluxkern.diagnostics.common import MODEL_FILE as MODEL_FILE
from fluxkern.diagnostics.gradients import (
    OUTPUT_MAGNITUDES,
    WEIGHT_MAGNITUDES,
    gradient_sensitivity,
)
from fluxkern.diagnostics.gradients import SECOND_DRAW_OFFSET as SECOND_DRAW_OFFSET
from fluxkern.diagnostics.landscape import loss_landscape
from fluxkern.diagnostics.losses import ORDER_LOSSES as ORDER_LOSSES
from fluxkern.diagnostics.losses import ORDERS as ORDERS
from fluxkern.diagnostics.losses import _al_torch as _al_torch
from fluxkern.diagnostics.losses import _gradient as _gradient
from fluxkern.diagnostics.losses import _Losses as _Losses
from fluxkern.diagnostics.perturbation import ROUGH_FREQUENCY as ROUGH_FREQUENCY
from fluxkern.diagnostics.perturbation import ROUGH_TERMS as ROUGH_TERMS
from fluxkern.diagnostics.perturbation import SMOOTH_FREQUENCY as SMOOTH_FREQUENCY
from fluxkern.diagnostics.perturbation import OutputPerturbation

__all__ = [
    "OUTPUT_MAGNITUDES",
    "WEIGHT_MAGNITUDES",
    "OutputPerturbation",
    "gradient_sensitivity",
    "loss_landscape",
]
