"""Training: :class:`Trainer` (one primal step and one dual update per epoch), its
:class:`History` and the callbacks that :func:`fluxkern.solve` composes.

Example:
    >>> trainer = Trainer(model, al, optimizer)
    >>> trainer.fit(500, [Resample(100), EarlyStopping(max_violation=1e-6), CSVLogger("h.csv")])
    >>> trainer.fit(500, [UnseenCheck()])  # residuals on fresh points: is the answer trusted?
"""

from __future__ import annotations

from fluxkern.training.auto_redraw import AutoRedraw
from fluxkern.training.callbacks import (
    Callback,
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    EpochFunction,
    Progress,
    StopTraining,
    TimeBudget,
)
from fluxkern.training.conditioning import ConditioningWarning
from fluxkern.training.continuation import Continuation
from fluxkern.training.final_phase import FinalPhase
from fluxkern.training.history import EpochRecord, History
from fluxkern.training.rad import RadSettings
from fluxkern.training.resample import Resample
from fluxkern.training.stall import StallCheck, StalledRunWarning
from fluxkern.training.switch import SwitchOptimizer
from fluxkern.training.trainer import NonFiniteLossError, Trainer
from fluxkern.training.unseen import UnseenCheck, UnseenPointsWarning, UnseenReport

__all__ = [
    "AutoRedraw",
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "ConditioningWarning",
    "Continuation",
    "EarlyStopping",
    "EpochFunction",
    "EpochRecord",
    "FinalPhase",
    "History",
    "NonFiniteLossError",
    "Progress",
    "RadSettings",
    "Resample",
    "StallCheck",
    "StalledRunWarning",
    "StopTraining",
    "SwitchOptimizer",
    "TimeBudget",
    "Trainer",
    "UnseenCheck",
    "UnseenPointsWarning",
    "UnseenReport",
]
