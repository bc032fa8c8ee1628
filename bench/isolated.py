"""torch.compile contenders, each run in a child process.

Inductor-compiled code can take the whole process down (seen here: torch 2.13.0+cpu, the
compiled backward of the torch.func jet died with a segmentation fault). Each compiled contender
therefore runs in `python bench/isolated.py KIND NAME ...`: the child builds the case, computes
the first loss, times the step and prints one JSON line; a crash becomes that contender's error
("killed by signal SIGSEGV") and the run goes on.

Kinds: "step" (a training step of the poisson case, contenders of torch_steps.py by name and
form) and "jet" (the jet alone, loss sum y^2 + sum J^2, forward + parameter gradient).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # before torch is imported
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import common  # noqa: E402
import poisson_case as case  # noqa: E402
import torch_steps as ts  # noqa: E402

__all__ = ["IsolatedContender", "jet_compiled_step"]

HERE = os.path.dirname(os.path.abspath(__file__))


class IsolatedContender(ts.Contender):
    """A contender whose loss check and timing run together in a child process."""

    def __init__(self, kind: str, name: str, group: str, spec: dict[str, Any]) -> None:
        super().__init__(name, group, loss=None)
        self.kind, self.spec = kind, spec
        self.seconds: float | None = None

    def first_loss(self) -> float | None:
        cmd = [sys.executable, os.path.join(HERE, "isolated.py"), self.kind, self.name]
        cmd += ["--group", self.group, "--spec", json.dumps(self.spec)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except subprocess.TimeoutExpired:
            self.error = "did not finish in 30 min"
            return None
        self.first_call_s = time.perf_counter() - t0
        if proc.returncode < 0:
            sig = signal.Signals(-proc.returncode).name
            self.error = f"the process was killed by signal {sig} (inside torch.compile's code)"
            return None
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            self.error = f"exit {proc.returncode}: {tail[:300]}"
            return None
        res = json.loads(lines[-1])
        if res.get("error"):
            self.error = res["error"]
            return None
        self.seconds, self.first_call_s = res["seconds"], res["first_call_s"]
        return res["loss"]

    def time_step(self, device: str, min_time: float) -> float:
        if self.seconds is None:
            raise RuntimeError(self.error or "not run")
        return self.seconds


def jet_compiled_step(net: torch.nn.Module, x: torch.Tensor):
    """torch.compile of the torch.func jet loss; the step returns (loss, parameter gradient)."""
    from torch.func import functional_call, jacfwd, vmap

    seq = net.to_sequential()
    params = dict(seq.named_parameters())

    def single(p, xi):
        return functional_call(seq, p, (xi,))

    def func_loss():
        y = functional_call(seq, params, (x,))
        jac = vmap(jacfwd(single, argnums=1), in_dims=(None, 0))(params, x)
        return (y * y).sum() + (jac * jac).sum()

    compiled = torch.compile(func_loss)

    def step():
        loss = compiled()
        return loss, torch.autograd.grad(loss, list(params.values()))

    return step


def _child(kind: str, name: str, group: str, spec: dict[str, Any]) -> dict[str, Any]:
    dtype = torch.float32
    if kind == "jet":
        net = case.make_net(spec["width"], spec["depth"], 3, dtype)
        x = case.make_points(spec["n"], 0, dtype).xi
        step = jet_compiled_step(net, x)
        t0 = time.perf_counter()
        loss = float(step()[0].detach())
        first = time.perf_counter() - t0
        t = common.time_call(step, min_time=spec["min_time"])
        return {"loss": loss, "first_call_s": first, "seconds": t}
    pts = case.make_points(spec["n"], spec["nb"], dtype)
    w, depth = spec["width"], spec["depth"]
    cons = ts.flux_contenders(w, depth, pts, dtype, "cpu", True)
    cons += ts.pinn_contenders(w, depth, pts, dtype, "cpu", True)
    (c,) = [c for c in cons if c.name == name and c.group == group]
    loss = c.first_loss()
    if loss is None:
        return {"error": c.error}
    try:
        t = c.time_step("cpu", spec["min_time"])
    except Exception as exc:  # noqa: BLE001 -- reported as the contender's error
        return {"error": ts._first_line(exc)}
    return {"loss": loss, "first_call_s": c.first_call_s, "seconds": t}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=["step", "jet"])
    p.add_argument("name")
    p.add_argument("--group", default="flux AL")
    p.add_argument("--spec", required=True, help="JSON: n, nb, width, depth, min_time")
    args = p.parse_args(argv)
    print(json.dumps(_child(args.kind, args.name, args.group, json.loads(args.spec))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
