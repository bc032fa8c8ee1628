"""What both diagnostics need: resolving a problem, and rebuilding a trained run from model.pt."""

from __future__ import annotations

import os

import torch

from fluxkern.lagrangian import AugmentedLagrangian
from fluxkern.nn import MLP
from fluxkern.problems.base import Problem

__all__ = ["MODEL_FILE"]

MODEL_FILE = "model.pt"


def _resolve_problem(problem: Problem | str) -> Problem:
    from fluxkern import problems

    if isinstance(problem, str):
        try:
            return problems.get(problem)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a Problem or a name, got {type(problem).__name__}")
    return problem


class _Run:
    """A trained run rebuilt from run_dir/model.pt: problem, network and its training loss."""

    def __init__(self, run_dir: str, problem: Problem | None = None) -> None:
        path = os.path.join(run_dir, MODEL_FILE)
        if not os.path.isdir(run_dir):
            raise ValueError(f"run folder {run_dir} does not exist")
        if not os.path.isfile(path):
            raise ValueError(
                f"{run_dir} has no {MODEL_FILE} (fluxkern solve writes it into its output folder)"
            )
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets one line
            raise ValueError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
        for key in ("problem", "formulation", "options", "model"):
            if not isinstance(ck, dict) or key not in ck:
                raise ValueError(f"{path}: not a fluxkern model file (no {key!r})")
        if problem is None:
            problem = _resolve_problem(ck["problem"])
        elif problem.name != ck["problem"]:
            raise ValueError(f"{path} is a {ck['problem']} run, not {problem.name}")
        self.run_dir, self.problem = run_dir, problem
        self.formulation = ck["formulation"]
        opts = ck["options"]
        self.dtype = getattr(torch, opts.get("dtype", "float64"))
        device = torch.device("cpu")
        sd = ck["model"]
        n_lin = len([k for k in sd if k.startswith("layers.") and k.endswith(".weight")])
        w0, wl = sd["layers.0.weight"], sd[f"layers.{n_lin - 1}.weight"]
        self.model = MLP(
            w0.shape[1],
            wl.shape[0],
            w0.shape[0],
            n_lin - 1,
            problem.activation,
            dtype=self.dtype,
            device=device,
        )
        self.model.load_state_dict(sd)
        seed = self.seed = int(opts.get("seed", 0))
        self.al: AugmentedLagrangian | None = None
        if self.formulation == "flux":
            dual = self.dual_state = ck.get("dual")
            if not dual:
                raise ValueError(f"{path}: a flux run without multipliers")
            terms = problem.flux_terms(seed, self.dtype, device)
            self.al = AugmentedLagrangian(
                self.model, terms, dual=dual["dual"], **dual.get("options", {})
            )
            try:
                self.al.load_state_dict(dual)
            except ValueError as exc:
                raise ValueError(
                    f"{path}: the saved multipliers do not fit problem {problem.name!r} as "
                    f"rebuilt here ({exc}); pass the problem instance the run used"
                ) from None
            self.backend = self.al.backend
        else:
            for p in self.model.parameters():
                p.requires_grad_(False)  # only input derivatives are needed
            self.pinn = problem.pinn_loss(self.model, seed, self.dtype, device)
            self.backend = "torch autograd (PINN)"

    def loss(self) -> float:
        """The training loss at the model's current weights (multipliers frozen)."""
        if self.al is not None:
            with torch.no_grad():
                return float(self.al())
        return float(self.pinn().detach())
