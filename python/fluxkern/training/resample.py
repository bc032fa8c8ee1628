"""Redrawing the collocation points every N epochs: the :class:`Resample` callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fluxkern.geometry import Resampler
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.training.callbacks import Callback
from fluxkern.training.final_phase import FinalPhase
from fluxkern.training.history import EpochRecord
from fluxkern.training.rad import RadSettings, rad_draw
from fluxkern.training.trainer import Trainer

__all__ = ["METHODS", "STATE_KEY", "Resample"]

METHODS = ("uniform", "rad")
# The key of Trainer.extra_state (kept in checkpoints) under which the residual-based draws
# and the final phase are recorded, so that a resumed run trains on the points it had.
STATE_KEY = "resample"


class Resample(Callback):
    """Redraws the points every `every` epochs, on the schedule of a
    :class:`fluxkern.geometry.Resampler`: after epoch e (e divisible by `every`) the loss uses
    the draw of seed ``trainer.seed + e // every``, so a run is deterministic and a resumed one
    continues on the draw it had (on_start redraws it, keeping the restored multipliers).

    method="uniform" takes the problem's own draw of that seed. method="rad" draws the
    objective's point set by residual (:func:`fluxkern.training.rad.rad_draw`: from a dense
    candidate set, with probability ~ |residual|^k / mean + c), the other sets as "uniform"
    does; the rows it picked are kept in ``trainer.extra_state`` (and so in checkpoints) for a
    resume. With `final` the last part of the run trains on one fixed, denser set
    (:class:`fluxkern.training.final_phase.FinalPhase`) and is not redrawn again.

    With an AugmentedLagrangian the new blocks replace the old ones through
    :meth:`AugmentedLagrangian.set_terms`: global multipliers carry over; pointwise ones (the
    default of a Constraint) are tied to the old points, so they are reset to their initial
    values (pointwise="reset") or resampling is refused with a ValueError (pointwise="error").
    With any other loss (e.g. a PINN loss) the sampler's new loss replaces the trainer's
    (method "uniform" only, without a final phase).

    Args:
        every: Epochs per draw, >= 1.
        sampler: Called as sampler(seed=...) and returning the new blocks (flux form) or the
            new loss callable. None draws through the trainer's problem: its
            flux_terms(seed, dtype, device), or pinn_loss(model, seed, dtype, device).
        pointwise: "reset" or "error": what happens to pointwise multipliers.
        reset_optimizer: Clear the optimizer's state (L-BFGS's curvature pairs, Adam's moments),
            which describes the old loss, at each redraw.
        method: "uniform" or "rad".
        rad: The residual-based draw's k, c and candidate draws (None: k = 1, c = 1, 8).
        final: The final phase on a fixed, denser set, or None for redraws to the end.

    Attributes:
        resampler: The schedule (set by on_start); resampler.num_draws counts the draws.
        final_from: The epoch after which the final phase began, or None.
    """

    # it redraws the points (UnseenCheck's warning then leaves that advice out)
    redraws_points = True

    def __init__(
        self,
        every: int,
        sampler: Callable[..., Any] | None = None,
        *,
        pointwise: str = "reset",
        reset_optimizer: bool = True,
        method: str = "uniform",
        rad: RadSettings | None = None,
        final: FinalPhase | None = None,
    ) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer; got {every!r}")
        if pointwise not in ("reset", "error"):
            raise ValueError(f"pointwise must be 'reset' or 'error'; got {pointwise!r}")
        if method not in METHODS:
            raise ValueError(f"method must be 'uniform' or 'rad'; got {method!r}")
        self.every, self.sampler = every, sampler
        self.pointwise, self.reset_optimizer = pointwise, reset_optimizer
        self.method, self.final = method, final
        self.rad = (rad or RadSettings()) if method == "rad" else None
        self.resampler: Resampler | None = None
        self.final_from: int | None = None
        self._draw: Callable[[int], Any] | None = None

    def _default_sampler(self, trainer: Trainer) -> Callable[..., Any]:
        problem = trainer.problem
        if problem is None:
            raise ValueError("Resample needs a sampler, or a trainer made with a problem")
        param = trainer.params[0]
        dtype, device = param.dtype, param.device
        if trainer.al is not None:
            return lambda seed: problem.flux_terms(seed, dtype, device)
        return lambda seed: problem.pinn_loss(trainer.model, seed, dtype, device)

    def _setup(self, trainer: Trainer) -> None:
        sampler = self.sampler or self._default_sampler(trainer)
        if trainer.al is None and (self.method != "uniform" or self.final is not None):
            raise ValueError(
                "resample method 'rad' and the final phase need the flux form (blocks to weigh "
                "and join); use method 'uniform' without a final phase"
            )
        self._draw = lambda seed: sampler(seed=seed)
        self.resampler = Resampler(sampler, self.every, seed=trainer.seed)
        self.final_from = None

    def before_load(self, trainer: Trainer, extra: dict[str, Any]) -> None:
        """Before a checkpoint's state is loaded into the trainer (a resume): a run saved in
        its final phase holds multipliers on the denser set, so the loss gets that set first
        (fluxkern.solve calls this; callers that load checkpoints themselves call it with the
        checkpoint's "extra" before Trainer.load_state_dict)."""
        saved = extra.get(STATE_KEY) or {}
        if saved.get("final_from") is None or self.final is None:
            return
        self._setup(trainer)
        self._start_final(trainer, saved["final_from"], saved.get("final_rows"), "reset")

    def on_start(self, trainer: Trainer) -> None:
        self._setup(trainer)
        saved = trainer.extra_state.get(STATE_KEY) or {}
        started = saved.get("final_from")
        if started is not None and started < trainer.epoch:  # a resumed run in its final phase
            self._start_final(trainer, started, saved.get("final_rows"), pointwise="keep")
            return
        if trainer.epoch >= self.every:  # a resumed run: the draw it trained on
            # At a redraw epoch the checkpoint may predate the redraw (Checkpoint ran first):
            # redraw as the run did then; the resets are idempotent if it did not.
            at_redraw = self.resampler.redraws_at(trainer.epoch)
            same_draw = saved.get("seed") == self.resampler.seed_for(trainer.epoch)
            self._redraw(
                trainer,
                trainer.epoch,
                reset_optimizer=at_redraw and self.reset_optimizer,
                pointwise=self.pointwise if at_redraw else "keep",
                rows=saved.get("rows") if same_draw and not at_redraw else None,
            )
        self._maybe_final(trainer)

    def start(self, trainer: Trainer) -> None:
        """Starts the redraws in the middle of a run, with a draw now (what on_start and the
        redraw at the current epoch do; :class:`fluxkern.training.AutoRedraw` calls it)."""
        self._setup(trainer)
        self._redraw(trainer, trainer.epoch, self.reset_optimizer, self.pointwise)

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> bool | None:
        assert self.resampler is not None
        if self.final_from is not None or self._maybe_final(trainer):
            return None
        if self.resampler.redraws_at(record.epoch):
            self._redraw(trainer, record.epoch, self.reset_optimizer, self.pointwise)
        return None

    def _maybe_final(self, trainer: Trainer) -> bool:
        """Starts the final phase when it is due; whether it did."""
        final = self.final
        if final is None or trainer.epoch < 1:
            return False
        if not final.due(trainer.epoch, trainer.target_epochs, trainer.elapsed):
            return False
        self._start_final(trainer, trainer.epoch, None, self.pointwise)
        if self.reset_optimizer:
            trainer.optimizer.state.clear()
        return True

    def _start_final(
        self, trainer: Trainer, epoch: int, rows: dict[str, Any] | None, pointwise: str
    ) -> None:
        assert self.final is not None and self._draw is not None and trainer.al is not None
        blocks, picked = self.final.blocks(
            trainer.model, self._draw, trainer.seed, self.rad, rows, trainer.al.backend
        )
        trainer.al.set_terms(blocks, pointwise=pointwise)
        self.final_from = epoch
        state = dict(trainer.extra_state.get(STATE_KEY) or {})
        state.update(final_from=epoch, final_rows=picked)
        trainer.extra_state[STATE_KEY] = state

    def _redraw(
        self,
        trainer: Trainer,
        epoch: int,
        reset_optimizer: bool,
        pointwise: str,
        rows: dict[str, Any] | None = None,
    ) -> None:
        assert self.resampler is not None and self._draw is not None
        if self.rad is not None:
            assert trainer.al is not None
            seed = self.resampler.seed_for(epoch)
            new, picked = rad_draw(
                trainer.model, self._draw, seed, self.rad, picked=rows, backend=trainer.al.backend
            )
            trainer.extra_state[STATE_KEY] = {"rows": picked, "seed": seed}
        else:
            new = self.resampler.points(epoch)
        if isinstance(trainer.al, AugmentedLagrangian):
            trainer.al.set_terms(new, pointwise=pointwise)
        else:
            trainer.set_loss(new)
        if reset_optimizer:
            trainer.optimizer.state.clear()
