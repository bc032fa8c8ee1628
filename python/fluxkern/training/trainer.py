"""The training loop's parts: :class:`Trainer` (one epoch per step) and its construction."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from fluxkern.evaluation import Evaluation
from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.optim import LBFGS
from fluxkern.training.history import EpochRecord, History

if TYPE_CHECKING:
    from fluxkern.training.callbacks import Callback

__all__ = ["NonFiniteLossError", "StopTraining", "Trainer"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class StopTraining(Exception):
    """Raised by a callback's on_epoch_end to end the run after the epoch (like returning True).

    Its message, if any, becomes the trainer's stop_reason.
    """


class Trainer:
    """Trains a network: each :meth:`step` is one primal step and (flux form) one dual update.

    Example:
        >>> trainer = Trainer(model, al, LBFGS(model.parameters(), line_search_fn="strong_wolfe"))
        >>> history = trainer.fit(100, [EarlyStopping(loss=1e-8), CSVLogger("log.csv")])

    Args:
        model: The network (its parameters are what the optimizer changes).
        loss: An AugmentedLagrangian (then each step ends with its dual update) or any callable
            returning a differentiable scalar loss (e.g. a problem's PINN loss).
        optimizer: A torch optimizer over the model's parameters; L-BFGS ones (fluxkern.optim
            and torch.optim) and those with ``steps_with_closure = True`` (fluxkern.optim's
            SSBFGS, SSBroyden, GaussNewton) are stepped with a closure, others once per epoch.
        name: Names the run in error messages (e.g. "poisson (flux)").
        problem: The problem being solved, if any (callbacks such as Resample use it).
        seed: The seed the points were drawn with (Resample's draws continue from it).

    Attributes:
        history: The records of the epochs run (also those before a resume).
        epoch: Epochs completed.
        current_epoch: The epoch being run, or whose callbacks run (epoch + 1 between epochs).
        target_epochs: The epochs the current or last fit() asked for.
        stopped: Whether a callback ended the last fit() early.
        stop_reason: Why (a StopTraining message or the callback's class name), or None.
        switched_at: The epoch after which :meth:`set_optimizer` replaced the optimizer (e.g.
            by :class:`fluxkern.training.SwitchOptimizer`), or None; kept in checkpoints.
        extra_state: State of callbacks that a resume needs (plain data and tensors by the
            callback's key, e.g. the rows a residual-based redraw picked); kept in
            checkpoints.
        callbacks: The callbacks of the current (or last) fit, in order.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: AugmentedLagrangian | Callable[[], Tensor],
        optimizer: torch.optim.Optimizer,
        *,
        name: str = "",
        problem: Any = None,
        seed: int = 0,
    ) -> None:
        self.model, self.optimizer = model, optimizer
        self.loss_fn: Callable[[], Tensor] = loss
        self.al = loss if isinstance(loss, AugmentedLagrangian) else None
        self.name, self.problem, self.seed = name, problem, seed
        self.params = list(model.parameters())
        self.uses_closure = _steps_with_closure(optimizer)
        self.switched_at: int | None = None
        self.extra_state: dict[str, Any] = {}
        self.callbacks: list[Callback] = []
        self.history = History()
        self.epoch, self.target_epochs, self.current_epoch = 0, 0, 1
        self.stopped, self.stop_reason = False, None
        self.elapsed_before = 0.0
        self._t0: float | None = None
        self._evals = 0

    # ------------------------------------------------------------------ one epoch
    def _closure(self) -> Tensor:
        self._evals += 1
        self.optimizer.zero_grad(set_to_none=True)
        if self.al is not None:  # the same as below, without autograd where it can
            # kept: the dual update takes it when the step ends where it was made
            self._evaluation = self.al.evaluate(backward=True)
            return self._evaluation.loss
        loss = self.loss_fn()
        loss.backward()
        return loss

    def set_loss(self, loss: AugmentedLagrangian | Callable[[], Tensor]) -> None:
        """Trains on another loss from the next step on (e.g. one on resampled points)."""
        self.loss_fn = loss
        self.al = loss if isinstance(loss, AugmentedLagrangian) else None
        if hasattr(self.optimizer, "set_loss"):  # optimizers that evaluate the loss themselves
            self.optimizer.set_loss(loss)

    def set_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Steps with another optimizer over the same parameters from the next epoch on.

        Records the switch in :attr:`switched_at` (the epochs completed now).

        Args:
            optimizer: The new optimizer (its own state starts afresh).
        """
        self.optimizer = optimizer
        self.uses_closure = _steps_with_closure(optimizer)
        self.switched_at = self.epoch

    def _dual_update(
        self, loss: Tensor, evaluation: Evaluation | None = None
    ) -> tuple[float, float, float, float, bool]:
        """The flux form's dual update: loss, max |C|, smallest and largest multiplier, and
        whether every parameter is finite, read from the device in one go (one host sync).

        Args:
            loss: The primal step's loss (recorded when the loss is not an
                AugmentedLagrangian).
            evaluation: An evaluation at the current parameters, for the dual update to use
                instead of evaluating again, or None.
        """
        f64 = torch.float64
        al = self.al
        row = [loss.detach().reshape(()).to(f64)]
        if al is not None:
            values = al.update_multipliers(evaluation)
            last = al.last_loss_unread
            if last is not None:
                row[0] = torch.as_tensor(last, dtype=f64).reshape(())
            cons = [v.abs().max() for k, v in values.items() if k in al.multipliers and v.numel()]
            lams = [v for v in al.multipliers.values() if v.numel()]
            row.append(torch.stack(cons).max().to(f64) if cons else row[0].new_zeros(()))
            if lams:
                row.append(torch.stack([v.min() for v in lams]).min().to(f64))
                row.append(torch.stack([v.max() for v in lams]).max().to(f64))
        finite = torch.stack([torch.isfinite(p).all() for p in self.params]).all()
        read = torch.stack(row + [finite.to(f64)]).tolist()
        loss_f, *rest, ok = read
        violation, lam_lo, lam_hi = (rest + [math.nan] * 3)[:3]
        return loss_f, violation, lam_lo, lam_hi, bool(ok)

    def step(self) -> EpochRecord:
        """Runs one epoch: a primal step, then (flux form) the dual update; records it.

        Returns:
            The epoch's record (also appended to :attr:`history`).

        Raises:
            NonFiniteLossError: The loss or a parameter became NaN or infinite (the epoch is
                not recorded).
        """
        t = time.perf_counter()
        self._evals = 0
        self._evaluation: Evaluation | None = None  # the last closure call's
        if self.uses_closure:
            loss_t = self.optimizer.step(self._closure)
            at_result = bool(getattr(self.optimizer, "last_closure_at_result", False))
        else:
            loss_t = self._closure()
            self.optimizer.step()
            at_result = False  # the step moved the parameters after the evaluation
        # The last closure call's evaluation holds at the parameters the step ends on when the
        # optimizer says its last closure call was made there (fluxkern.optim's closure
        # optimizers report it: last_closure_at_result); otherwise the dual update evaluates.
        evaluation = self._evaluation if at_result else None
        self._evaluation = None
        loss, violation, lam_lo, lam_hi, finite_params = self._dual_update(loss_t, evaluation)
        if not math.isfinite(loss) or not finite_params:
            of = f" of {self.name}" if self.name else ""
            raise NonFiniteLossError(f"non-finite loss at epoch {self.epoch + 1}{of}")
        record = EpochRecord(
            self.epoch + 1,
            loss,
            violation,
            lam_lo,
            lam_hi,
            self._evals,
            time.perf_counter() - t,
        )
        self.history.append(record)
        self.epoch += 1
        return record

    # ------------------------------------------------------------------ the loop
    @property
    def elapsed(self) -> float:
        """Seconds of training: those before a resume, then fit()'s so far (frozen after it)."""
        running = time.perf_counter() - self._t0 if self._t0 is not None else 0.0
        return self.elapsed_before + running

    def fit(self, epochs: int, callbacks: Iterable[Callback] = ()) -> History:
        """Steps until `epochs` epochs are complete or a callback stops the run.

        Each callback's on_start runs first; after every epoch each callback's on_epoch_end
        runs (all of them, in order), and the run ends there if one returned True or raised
        StopTraining; then each on_end runs. On an exception (Ctrl-C included) each on_error
        runs instead of on_end and the exception propagates.

        Args:
            epochs: The epoch to end at, counting those already run (after a resume).
            callbacks: Callback objects.

        Returns:
            The history.
        """
        cbs = self.callbacks = list(callbacks)
        self.target_epochs, self.stopped, self.stop_reason = epochs, False, None
        self._t0, self.current_epoch = time.perf_counter(), self.epoch + 1
        try:
            for cb in cbs:
                cb.on_start(self)
            while self.epoch < epochs and not self.stopped:
                self.current_epoch = self.epoch + 1
                record = self.step()
                for cb in cbs:
                    try:
                        stop = bool(cb.on_epoch_end(self, record))
                    except StopTraining as exc:
                        stop = True
                        self.stop_reason = self.stop_reason or str(exc) or type(cb).__name__
                    if stop:
                        self.stopped = True
                        self.stop_reason = self.stop_reason or type(cb).__name__
        except BaseException as exc:
            self._freeze_time()
            for cb in cbs:
                cb.on_error(self, exc)
            raise
        self._freeze_time()
        for cb in cbs:
            cb.on_end(self)
        return self.history

    def _freeze_time(self) -> None:
        self.elapsed_before, self._t0 = self.elapsed, None

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The state a checkpoint holds: epoch, elapsed_s, model, optimizer, dual, history, rng."""
        return {
            "epoch": self.epoch,
            "elapsed_s": self.elapsed,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "dual": self.al.state_dict() if self.al is not None else None,
            "history": self.history.to_dict(),
            "rng": torch.get_rng_state(),
            "switched_at": self.switched_at,
            "extra": dict(self.extra_state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what :meth:`state_dict` saved (a checkpoint), to continue training.

        The optimizer must be of the kind the state was saved with: after a switch
        (``state["switched_at"]`` not None) call :meth:`set_optimizer` with the second one
        first (fluxkern.solve does).

        Raises:
            RuntimeError, ValueError, KeyError, TypeError: The state does not fit this trainer
                (the model, optimizer or multipliers may then be partly restored).
        """
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.al is not None:
            self.al.load_state_dict(state["dual"])
        self.history = History.from_dict(state["history"])
        self.epoch, self.elapsed_before = state["epoch"], state["elapsed_s"]
        self.switched_at = state.get("switched_at")
        self.extra_state = dict(state.get("extra") or {})
        torch.set_rng_state(state["rng"])


def _steps_with_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer's step takes the loss closure (L-BFGS and fluxkern.optim's)."""
    return isinstance(optimizer, (LBFGS, torch.optim.LBFGS)) or bool(
        getattr(optimizer, "steps_with_closure", False)
    )
