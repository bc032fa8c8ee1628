"""The compiled residual program of a fused group (fluxkern.program) against its documentation.

The oracle is the blocks' own torch evaluation (BoundBlock.residuals_torch on the jet): a
program run through the torch twin with every residual signed gives r, which must equal each
block's residuals on its rows and vanish off them.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import fluxkern
from fluxkern import ops, reference
from fluxkern.nn import MlpSpec, mlp_spec
from fluxkern.program import TABLE_COLUMNS, BlockSlice, compile_group, split_op_args

F64 = torch.float64
CPU = torch.device("cpu")


def _blocks(paired: bool = False):
    """A model (d = 2, m = 3) and bound blocks: two on one point set and one on another, or two
    on one paired point set."""
    g = torch.Generator().manual_seed(3)
    x, y = fluxkern.inputs("x y")
    u, q1, q2 = fluxkern.outputs("u q1 q2")
    f = fluxkern.data("f")
    xi = torch.rand(7, 2, generator=g, dtype=F64)
    xb = torch.rand(5, 2, generator=g, dtype=F64)
    fi = torch.rand(7, generator=g, dtype=F64)
    if paired:
        pair = (xi[:5], xb)
        terms = [
            fluxkern.Constraint("per_u", [u, x * q1.d(y)], pair, form="signed"),
            fluxkern.Constraint("per_q", q1 * q2 - u, pair, reduction="sum"),
        ]
    else:
        terms = [
            fluxkern.Objective("pde", q1.d(x) + q2.d(y) + f, xi, {"f": fi}, weight=2.0),
            fluxkern.Constraint("flux", [q1 - u.d(x), q2 - y * u.d(y)], xi, form="signed"),
            fluxkern.Constraint("bc", u * u - x, xb, reduction="sum"),
        ]
    torch.manual_seed(4)
    net = fluxkern.MLP(2, 3, 6, 2, "tanh", dtype=F64)
    return net, [t.bind(2, 3, F64, CPU) for t in terms]


def test_segmented_group_layout():
    _, bound = _blocks()
    x, prog = compile_group(bound, F64, CPU)
    assert torch.equal(x, torch.cat([bound[0].x, bound[2].x]))
    assert prog.segmented and not prog.paired and prog.n_res == 4
    assert prog.slices == (
        BlockSlice("pde", 0, 7, 0, 1),
        BlockSlice("flux", 0, 7, 1, 3),
        BlockSlice("bc", 7, 12, 3, 4),
    )
    assert prog.table.dtype == torch.int32 and prog.table.shape[1] == len(TABLE_COLUMNS)
    assert prog.cols.shape[0] == x.shape[0] and prog.coef.shape == prog.table.shape[:1]
    # every monomial reads a column (an indicator where the block's own monomial has none)
    assert (prog.table[:, 1] >= 0).all() and (prog.table[:, 1] < prog.cols.shape[1]).all()
    assert torch.equal(prog.squared, torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=F64))
    assert torch.equal(prog.red, torch.tensor([1 / 7, 1 / 7, 1 / 7, 1.0], dtype=F64))


@pytest.mark.parametrize("paired", [False, True], ids=["segmented", "paired"])
@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_program_residuals_are_the_blocks_residuals(paired, backend):
    if backend not in fluxkern.backends():
        pytest.skip("needs the CPU build")
    net, bound = _blocks(paired)
    x, prog = compile_group(bound, F64, CPU)
    assert prog.paired == paired and prog.segmented != paired
    n = x.shape[0] // 2 if paired else x.shape[0]
    signed = dataclasses.replace(prog, squared=torch.zeros_like(prog.squared))  # C = r
    s = mlp_spec(net)
    lam, mu = torch.zeros(prog.n_res, dtype=F64), torch.zeros(prog.n_res, dtype=F64)
    _, r = ops.block_loss(signed, x, s, lam, mu, backend=backend)  # [N, R]
    assert r.shape == (n, prog.n_res)
    for b, (name, r0, r1, c0, c1) in zip(bound, prog.slices, strict=True):
        assert name == b.block.name
        y, jac = reference.mlp_jet(b.x, s)
        want = b.residuals_torch(y, jac)
        torch.testing.assert_close(r[r0:r1, c0:c1], want, rtol=1e-12, atol=1e-12)
        off = torch.ones(n, dtype=torch.bool)
        off[r0:r1] = False
        assert not r[off, c0:c1].any()


def test_op_args_round_trip_without_the_extension():
    _, bound = _blocks()
    x, prog = compile_group(bound, F64, CPU)
    lam, mu = torch.ones(12, 4, dtype=F64), torch.ones(4, dtype=F64)
    shift, scale, w, b = (torch.zeros(2, dtype=F64) for _ in range(4))  # stand-ins
    args = prog.op_args(x, MlpSpec(shift, scale, (w,), (b,), "tanh"), lam, mu)
    assert len(args) == 16 and isinstance(args[3], list) and isinstance(args[4], list)
    back, x2, net, lam2, mu2 = split_op_args(args)
    assert x2 is x and net.shift is shift and net.scale is scale and lam2 is lam and mu2 is mu
    assert net.weights[0] is w and net.biases[0] is b and net.activation == "tanh"
    for field in ("table", "coef", "cols", "squared", "red", "n_res", "paired"):
        assert getattr(back, field) is getattr(prog, field)
    with pytest.raises(dataclasses.FrozenInstanceError):
        prog.table = prog.table  # type: ignore[misc]
