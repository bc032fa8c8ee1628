"""Accuracy cost of TF32 GEMMs (fluxkern.set_matmul_precision("tf32")), emulated on the CPU.

TF32 tensor cores round both GEMM operands to 10 explicit mantissa bits (round to nearest even)
and accumulate in float32. This script runs the pure-torch twin (fluxkern.reference) in float32
with exactly that rounding applied to the operands of every GEMM it does (its matmuls and
einsums, forward and backward: the same GEMMs that fluxkern runs through cuBLAS on CUDA), and
reports, against float64:
  - the relative error of y and J of the standard net (d 2, width 64, 4 hidden, m 3, tanh,
    N 8192), at initialisation and after the short solve below;
  - the relative error of the poisson flux loss value and of its parameter gradient (same net,
    8192 interior + 512 boundary points, bench_loss.py's setup);
  - a short poisson solve (the demo problem, L-BFGS, backend "torch", float32) with emulated
    TF32 against plain float32: final relative L2 errors of u, q1, q2.
Plain float32 (no rounding) is reported next to every TF32 number. Nothing here runs on a GPU:
real TF32 hardware accumulates in a different order, so measured GPU errors will differ in the
last bits, not in their size.

Usage: python bench/tf32_emulation.py [--epochs 200] [--json PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import fluxkern as fk  # noqa: E402
from bench_loss import poisson_terms  # noqa: E402
from fluxkern import reference  # noqa: E402

TF32_DROPPED_BITS = 13  # float32 has 23 explicit mantissa bits, TF32 keeps 10


def tf32_round(t: Tensor) -> Tensor:
    """Rounds float32 values to TF32 (10 explicit mantissa bits), round to nearest, ties to even.

    Non-finite values pass unchanged; values that round past the largest finite TF32 become inf,
    as in hardware.
    """
    bits = t.contiguous().view(torch.int32)
    keep_lsb = (bits >> TF32_DROPPED_BITS) & 1  # the last kept bit: ties go to even
    half = (1 << (TF32_DROPPED_BITS - 1)) - 1  # 0xFFF
    rounded = (bits + half + keep_lsb) & ~((1 << TF32_DROPPED_BITS) - 1)
    return torch.where(torch.isfinite(t), rounded.view(torch.float32), t)


class _RoundOperand(torch.autograd.Function):
    """Forward: the operand rounded to TF32. Backward: the gradient passes unchanged."""

    @staticmethod
    def forward(ctx, t):
        return tf32_round(t)

    @staticmethod
    def backward(ctx, g):
        return g


class _RoundGradient(torch.autograd.Function):
    """Forward: identity on a GEMM's result. Backward: the incoming gradient rounded to TF32, so
    that the backward GEMMs of the product also see TF32 operands."""

    @staticmethod
    def forward(ctx, t):
        return t.view_as(t)

    @staticmethod
    def backward(ctx, g):
        return tf32_round(g)


def _tf32_product(fn: Callable[..., Tensor], a: Tensor, b: Tensor, *lead: Any) -> Tensor:
    out = fn(*lead, _RoundOperand.apply(a), _RoundOperand.apply(b))
    return _RoundGradient.apply(out)


class EmulatedTf32(TorchFunctionMode):
    """Inside this mode, every float32 matmul / mm / bmm / einsum of two tensors runs with TF32
    operands (forward and backward); everything else is unchanged."""

    _PRODUCTS = {torch.matmul, torch.mm, torch.bmm, Tensor.__matmul__, Tensor.matmul}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not kwargs and func in self._PRODUCTS and len(args) == 2 and _all_f32(args):
            return _tf32_product(func, args[0], args[1])
        if func is torch.einsum and not kwargs and len(args) == 3 and _all_f32(args[1:]):
            return _tf32_product(torch.einsum, args[1], args[2], args[0])
        return func(*args, **kwargs)


def _all_f32(ts) -> bool:
    return all(isinstance(t, Tensor) and t.dtype == torch.float32 for t in ts)


def rel_err(a: Tensor, b: Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def flat(ts) -> Tensor:
    return torch.cat([t.reshape(-1) for t in ts])


def standard_net(dtype: torch.dtype) -> fk.MLP:
    torch.manual_seed(0)
    return fk.MLP(
        2,
        3,
        64,
        4,
        "tanh",
        input_shift=[0.5, 0.5],
        input_scale=[1 / math.sqrt(12)] * 2,
        dtype=dtype,
    )


def copy_net(net: fk.MLP, dtype: torch.dtype) -> fk.MLP:
    return copy.deepcopy(net).to(dtype)


def jet_errors(net64: fk.MLP, x64: Tensor) -> dict[str, Any]:
    """y and J of the twin in float32 (plain and TF32) and of the fused CPU op, against float64."""
    s64 = net64.spec()
    y64, j64 = reference.mlp_jet(x64, s64)
    net32 = copy_net(net64, torch.float32)
    s = net32.spec()
    x = x64.float()
    args = (x, s)
    out: dict[str, Any] = {}
    with torch.no_grad():
        y, j = reference.mlp_jet(*args)
        out["float32"] = {"y": rel_err(y, y64), "J": rel_err(j, j64)}
        with EmulatedTf32():
            y, j = reference.mlp_jet(*args)
        out["tf32 (emulated)"] = {"y": rel_err(y, y64), "J": rel_err(j, j64)}
        if "cpu" in fk.backends():
            y, j = fk.ops.mlp_jet(*args, backend="cpu")
            out["float32 fused cpu op"] = {"y": rel_err(y, y64), "J": rel_err(j, j64)}
    return out


def flux_terms(xi: Tensor, xb: Tensor) -> list:
    """The poisson flux form of bench_loss.py on given points (dtype of the points)."""
    f = 2 * math.pi**2 * torch.sin(math.pi * xi[:, 0]) * torch.sin(math.pi * xi[:, 1])
    x, y = fk.inputs("x y")
    u, qx, qy = fk.outputs("u qx qy")
    fd = fk.data("f")
    return [
        fk.Objective("pde", qx.d(x) + qy.d(y) + fd, xi, data={"f": f}),
        fk.Constraint("flux", [qx - u.d(x), qy - u.d(y)], xi),
        fk.Constraint("bc", u, xb),
    ]


def loss_errors(n: int, nb: int) -> dict[str, Any]:
    """The poisson flux loss and its parameter gradient (twin) in float32 / TF32 vs float64, on
    the same points and weights (float64 values rounded once to float32)."""
    _, xi64, xb64, _ = poisson_terms(n, nb, torch.float64)
    net64 = standard_net(torch.float64)
    al64 = fk.AugmentedLagrangian(net64, flux_terms(xi64, xb64), backend="torch")
    loss64 = al64()
    g64 = flat(torch.autograd.grad(loss64, list(net64.parameters())))
    net32 = copy_net(net64, torch.float32)
    al32 = fk.AugmentedLagrangian(net32, flux_terms(xi64.float(), xb64.float()), backend="torch")
    out: dict[str, Any] = {"float64 loss": float(loss64.detach())}
    for name, mode in (("float32", None), ("tf32 (emulated)", EmulatedTf32)):
        if mode is None:
            loss = al32()
            g = flat(torch.autograd.grad(loss, list(net32.parameters())))
        else:
            with mode():
                loss = al32()
                g = flat(torch.autograd.grad(loss, list(net32.parameters())))
        out[name] = {"loss": rel_err(loss, loss64), "gradient": rel_err(g, g64)}
    return out


def short_solve(epochs: int) -> dict[str, Any]:
    """The poisson demo, float32 twin, plain against emulated TF32 (same seed and points)."""
    out: dict[str, Any] = {}
    for name, mode in (("float32", None), ("tf32 (emulated)", EmulatedTf32)):
        with tempfile.TemporaryDirectory() as tmp:
            opts = dict(
                epochs=epochs,
                dtype="float32",
                backend="torch",
                progress=False,
                plots=False,
                out=tmp,
                checkpoint_every=max(epochs, 1),
            )
            t0 = time.perf_counter()
            if mode is None:
                res = fk.solve("poisson", **opts)
            else:
                with mode():
                    res = fk.solve("poisson", **opts)
            seconds = time.perf_counter() - t0
            with open(os.path.join(tmp, "history.json")) as fh:
                loss = json.load(fh)["loss"]
        out[name] = {
            "errors": res["errors"],
            "final_loss": res["final_loss"],
            "loss_every_20_epochs": loss[19::20],
            "seconds": round(seconds, 1),
        }
    return out


def trained_standard_net(epochs: int) -> fk.MLP:
    """The standard net after a few float64 L-BFGS steps on the poisson flux loss (weights that
    have moved from their initialisation)."""
    net = standard_net(torch.float64)
    terms, *_ = poisson_terms(2048, 256, torch.float64)
    al = fk.AugmentedLagrangian(net, terms, backend="cpu" if "cpu" in fk.backends() else "torch")
    opt = torch.optim.LBFGS(net.parameters(), line_search_fn="strong_wolfe", max_iter=20)

    def closure():
        opt.zero_grad()
        loss = al()
        loss.backward()
        return loss

    for _ in range(epochs):
        opt.step(closure)
        al.update_multipliers()
    return net


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=8192, help="points of the jet and loss checks")
    p.add_argument("--nb", type=int, default=512, help="boundary points of the loss check")
    p.add_argument("--epochs", type=int, default=200, help="L-BFGS epochs of the short solve")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    info = common.machine_info("cpu")
    print("TF32 emulated on CPU, not measured on a GPU")
    print(f"machine: {info['cpu']} ({info['cores']} cores), torch {info['torch']}")
    res: dict[str, Any] = {
        "note": "emulated on CPU, not measured on a GPU: float32 twin with GEMM operands "
        "rounded to TF32 (10 mantissa bits, round to nearest even), float32 accumulation",
        "machine": info,
        "net": "d 2, width 64, 4 hidden, m 3, tanh",
    }
    # sanity of the rounding itself: 1 + 2^-11 is a tie (rounds to even: 1), 1 + 3 * 2^-11 rounds up
    probe = torch.tensor([1 + 2**-11, 1 + 3 * 2**-11, -(1 + 3 * 2**-11), 1 + 2**-12])
    want = torch.tensor([1.0, 1 + 2**-9, -(1 + 2**-9), 1.0])
    assert torch.equal(tf32_round(probe), want), tf32_round(probe)

    gen = torch.Generator().manual_seed(1)
    x64 = torch.rand(args.n, 2, generator=gen, dtype=torch.float64)  # [N, d] in [0, 1)^2
    res["jet_at_init"] = jet_errors(standard_net(torch.float64), x64)
    res["loss_at_init"] = loss_errors(args.n, args.nb)
    res["jet_after_20_float64_lbfgs_epochs"] = jet_errors(trained_standard_net(20), x64)
    if args.epochs > 0:
        res["poisson_solve"] = {"epochs": args.epochs, **short_solve(args.epochs)}
    res["seconds_total"] = round(time.perf_counter() - t0, 1)

    rows = []
    for key in ("jet_at_init", "jet_after_20_float64_lbfgs_epochs"):
        for impl, e in res[key].items():
            rows.append(
                {
                    "check": key,
                    "impl": impl,
                    "rel err y": f"{e['y']:.2e}",
                    "rel err J": f"{e['J']:.2e}",
                }
            )
    common.print_table(rows, ["check", "impl", "rel err y", "rel err J"])
    rows = [
        {"impl": k, "rel err loss": f"{v['loss']:.2e}", "rel err gradient": f"{v['gradient']:.2e}"}
        for k, v in res["loss_at_init"].items()
        if isinstance(v, dict)
    ]
    print(f"poisson flux loss at init (float64 value {res['loss_at_init']['float64 loss']:.6e}):")
    common.print_table(rows, ["impl", "rel err loss", "rel err gradient"])
    if "poisson_solve" in res:
        rows = []
        for k, v in res["poisson_solve"].items():
            if isinstance(v, dict):
                row = {"impl": k, "final loss": f"{v['final_loss']:.3e}", "s": v["seconds"]}
                row.update({f"rel L2 {f}": f"{e:.2e}" for f, e in v["errors"].items()})
                rows.append(row)
        print(f"poisson demo, {args.epochs} L-BFGS epochs, backend torch, float32:")
        common.print_table(rows, list(rows[0].keys()))
        for k, v in res["poisson_solve"].items():
            if isinstance(v, dict):
                trace = " ".join(f"{x:.1e}" for x in v["loss_every_20_epochs"])
                print(f"  {k} loss every 20 epochs: {trace}")
    print(f"total {res['seconds_total']} s")
    if args.json:
        common.dump_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
