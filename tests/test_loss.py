"""The fused augmented-Lagrangian loss against an independent plain-PyTorch implementation.

The oracle in this file does not use fluxkern's expressions, tables, jet or reference twin: the
network is ``MLP.to_sequential()`` (an nn.Sequential), derivatives come from
torch.autograd.grad(create_graph=True), every residual is written out by hand, and the loss is

    L = sum_obj w R(sum_i r_i^2) + sum_con R(sum_i lam_i C_i + mu_i / 2 C_i^2)

with R the block's mean or sum over points and C = r^2 (squared) or r (signed).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass, field

import pytest
import torch

import fluxkern
from fluxkern import ops
from fluxkern.nn import MlpSpec
from fluxkern.program import split_op_args
from matrix import TOL, device_backends, rel_err

F64, F32 = torch.float64, torch.float32
TOL64 = TOL[F64]
FORMS = ["squared", "signed"]
MULTIPLIERS = ["pointwise", "global"]
REDUCTIONS = ["mean", "sum"]


# ============================================================================ the hand oracle


@dataclass
class Hand:
    """One block of the hand-written loss."""

    name: str
    kind: str  # "objective" or "constraint"
    res: Callable  # (X [N, d], Y [N, m], J [N, m, d], data dict of [N]) -> r [N, R]
    points: object  # [N, d] tensor or a pair (a, b)
    data: dict = field(default_factory=dict)
    weight: float = 1.0
    reduction: str = "mean"
    form: str = "squared"


def _fields(seq, pts):
    """Y = seq(X) and J[:, o, j] = dY_o/dX_j by autograd (graph kept for the parameter grads)."""
    x = pts.detach().clone().requires_grad_(True)
    y = seq(x)
    cols = [torch.autograd.grad(y[:, o].sum(), x, create_graph=True)[0] for o in range(y.shape[1])]
    return x, y, torch.stack(cols, 1)


def _hand_residuals(seq, h: Hand):
    if isinstance(h.points, tuple):
        a, b = h.points
        n = a.shape[0]
        da = {k: (v[:n] if v.shape[0] == 2 * n else v) for k, v in h.data.items()}
        db = {k: (v[n:] if v.shape[0] == 2 * n else v) for k, v in h.data.items()}
        return h.res(*_fields(seq, a), da) - h.res(*_fields(seq, b), db)
    return h.res(*_fields(seq, h.points), h.data)


def hand_loss(seq, hands, lams, mus):
    """The loss and C per constraint, in plain torch."""
    total = 0.0
    cs = {}
    for h in hands:
        r = _hand_residuals(seq, h)
        red = (lambda t: t.mean()) if h.reduction == "mean" else (lambda t: t.sum())
        if h.kind == "objective":
            total = total + h.weight * red((r * r).sum(1))
        else:
            c = r * r if h.form == "squared" else r
            lam, mu = lams[h.name], mus[h.name]  # lam [N, R] or [R] (broadcasts), mu [R]
            total = total + red((lam * c + 0.5 * mu * c * c).sum(1))
            cs[h.name] = c.detach()
    return total, cs


def mlp_grads_from_sequential(net, seq, seq_grads):
    """Maps gradients w.r.t. the Sequential's parameters to the MLP's (standardisation folded
    into layer 1: W1s = W1 / scale, b1s = b1 - W1s @ shift)."""
    linears = [m for m in seq if isinstance(m, torch.nn.Linear)]
    assert len(linears) == len(net.layers) and len(seq_grads) == 2 * len(linears)
    out = []
    for i in range(len(linears)):
        gw, gb = seq_grads[2 * i], seq_grads[2 * i + 1]
        if i == 0:
            s, sh = net.input_scale, net.input_shift
            gw = gw / s - torch.outer(gb, sh / s)
        out += [gw, gb]
    return out


def mlp_params(net):
    return [p for layer in net.layers for p in (layer.weight, layer.bias)]


# ============================================================================ the systems


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _net(d, m, act, dev, dtype=F64, seed=0, shift=None, scale=None):
    torch.manual_seed(seed)
    net = fluxkern.MLP(d, m, 7, 2, act, input_shift=shift, input_scale=scale, dtype=dtype)
    # non-zero biases so that every parameter's gradient is exercised
    with torch.no_grad():
        for layer in net.layers:
            layer.bias.uniform_(-0.3, 0.3)
    return net.to(dev)


def _rand(g, *shape, lo=0.0, hi=1.0, dev="cpu"):
    return (lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=F64)).to(dev)


def poisson(form, mult, red, dev, n=9, nb=5, seed=1):
    """-lap u = f in flux form: outputs u qx qy."""
    x, y = fluxkern.inputs("x y")
    u, qx, qy = fluxkern.outputs("u qx qy")
    f = fluxkern.data("f")
    g = _gen(seed)
    pts, bnd = _rand(g, n, 2, dev=dev), _rand(g, nb, 2, dev=dev)
    fv = _rand(g, n, lo=-1, hi=1, dev=dev)
    kw = {"form": form, "multiplier": mult, "reduction": red}
    terms = [
        fluxkern.Objective("pde", qx.d(x) + qy.d(y) + f, pts, {"f": fv}, weight=0.7, reduction=red),
        fluxkern.Constraint("flux", [qx - u.d(x), qy - u.d(y)], pts, **kw),
        fluxkern.Constraint("bc", u, bnd, **kw),
    ]
    hands = [
        Hand(
            "pde",
            "objective",
            lambda X, Y, J, D: (J[:, 1, 0] + J[:, 2, 1] + D["f"])[:, None],
            pts,
            {"f": fv},
            weight=0.7,
            reduction=red,
        ),
        Hand(
            "flux",
            "constraint",
            lambda X, Y, J, D: torch.stack([Y[:, 1] - J[:, 0, 0], Y[:, 2] - J[:, 0, 1]], 1),
            pts,
            reduction=red,
            form=form,
        ),
        Hand("bc", "constraint", lambda X, Y, J, D: Y[:, 0:1], bnd, reduction=red, form=form),
    ]
    net = _net(2, 3, "tanh", dev, shift=[0.5, 0.25], scale=[2.0, 0.5])
    return net, terms, hands


def diffusion(form, mult, red, dev, seed=2):
    """-div(k grad u) = f: q + k grad u = 0 with data k, u = g on the boundary."""
    x, y = fluxkern.inputs("x y")
    u, qx, qy = fluxkern.outputs("u qx qy")
    f, k, gd = fluxkern.data("f k g")
    g = _gen(seed)
    pts, bnd = _rand(g, 11, 2, dev=dev), _rand(g, 4, 2, dev=dev)
    fv, kv = _rand(g, 11, lo=-1, hi=1, dev=dev), _rand(g, 11, lo=0.5, hi=2, dev=dev)
    gv = _rand(g, 4, lo=-1, hi=1, dev=dev)
    kw = {"form": form, "multiplier": mult, "reduction": red}
    terms = [
        fluxkern.Objective("pde", qx.d(x) + qy.d(y) - f, pts, {"f": fv}, reduction=red),
        fluxkern.Constraint("flux", [qx + k * u.d(x), qy + k * u.d(y)], pts, {"k": kv}, **kw),
        fluxkern.Constraint("bc", u - gd, bnd, {"g": gv}, **kw),
    ]
    hands = [
        Hand(
            "pde",
            "objective",
            lambda X, Y, J, D: (J[:, 1, 0] + J[:, 2, 1] - D["f"])[:, None],
            pts,
            {"f": fv},
            reduction=red,
        ),
        Hand(
            "flux",
            "constraint",
            lambda X, Y, J, D: torch.stack(
                [Y[:, 1] + D["k"] * J[:, 0, 0], Y[:, 2] + D["k"] * J[:, 0, 1]], 1
            ),
            pts,
            {"k": kv},
            reduction=red,
            form=form,
        ),
        Hand(
            "bc",
            "constraint",
            lambda X, Y, J, D: (Y[:, 0] - D["g"])[:, None],
            bnd,
            {"g": gv},
            reduction=red,
            form=form,
        ),
    ]
    return _net(2, 3, "silu", dev, seed=1), terms, hands


RE = 40.0


def navier_stokes(form, mult, red, dev, seed=3):
    """Steady NS, velocity-vorticity-pressure: outputs u v p w, w = v_x - u_y."""
    x, y = fluxkern.inputs("x y")
    u, v, p, w = fluxkern.outputs("u v p w")
    g1, g2 = fluxkern.data("g1 g2")
    g = _gen(seed)
    pts, bnd = _rand(g, 13, 2, dev=dev), _rand(g, 6, 2, dev=dev)
    g1v, g2v = _rand(g, 6, dev=dev), _rand(g, 6, lo=-1, dev=dev)
    kw = {"form": form, "multiplier": mult, "reduction": red}
    terms = [
        fluxkern.Objective(
            "momentum",
            [
                u * u.d(x) + v * u.d(y) + p.d(x) + w.d(y) / RE,
                u * v.d(x) + v * v.d(y) + p.d(y) - w.d(x) / RE,
                u.d(x) + v.d(y),
            ],
            pts,
            weight=1.3,
            reduction=red,
        ),
        fluxkern.Constraint("vorticity", w - (v.d(x) - u.d(y)), pts, **kw),
        fluxkern.Constraint("wall", [u - g1, v - g2], bnd, {"g1": g1v, "g2": g2v}, **kw),
    ]

    def mom(X, Y, J, D):
        U, V, Pp, W = Y.unbind(1)
        return torch.stack(
            [
                U * J[:, 0, 0] + V * J[:, 0, 1] + J[:, 2, 0] + J[:, 3, 1] / RE,
                U * J[:, 1, 0] + V * J[:, 1, 1] + J[:, 2, 1] - J[:, 3, 0] / RE,
                J[:, 0, 0] + J[:, 1, 1],
            ],
            1,
        )

    hands = [
        Hand("momentum", "objective", mom, pts, weight=1.3, reduction=red),
        Hand(
            "vorticity",
            "constraint",
            lambda X, Y, J, D: (Y[:, 3] - (J[:, 1, 0] - J[:, 0, 1]))[:, None],
            pts,
            reduction=red,
            form=form,
        ),
        Hand(
            "wall",
            "constraint",
            lambda X, Y, J, D: torch.stack([Y[:, 0] - D["g1"], Y[:, 1] - D["g2"]], 1),
            bnd,
            {"g1": g1v, "g2": g2v},
            reduction=red,
            form=form,
        ),
    ]
    return _net(2, 4, "sin", dev, seed=2, scale=[1.5, 1.5]), terms, hands


def cubic(form, mult, red, dev, seed=4):
    """Klein-Gordon-like u_tt - u_xx + u + u^3/2 + x u u_x = f, first order: q = u_x, p = u_t;
    initial condition [u - g, x p] (an input factor alone)."""
    x, t = fluxkern.inputs("x t")
    u, q, p = fluxkern.outputs("u q p")
    f, gd = fluxkern.data("f g")
    g = _gen(seed)
    pts, ini = _rand(g, 7, 2, lo=-1, dev=dev), _rand(g, 5, 2, lo=-1, dev=dev)
    fv, gv = _rand(g, 7, dev=dev), _rand(g, 5, dev=dev)
    kw = {"form": form, "multiplier": mult, "reduction": red}
    terms = [
        fluxkern.Objective(
            "pde",
            p.d(t) - q.d(x) + u + 0.5 * u**3 + x * u * q - f,
            pts,
            {"f": fv},
            reduction=red,
        ),
        fluxkern.Constraint("defs", [q - u.d(x), p - u.d(t)], pts, **kw),
        fluxkern.Constraint("init", [u - gd, x * p], ini, {"g": gv}, **kw),
    ]
    hands = [
        Hand(
            "pde",
            "objective",
            lambda X, Y, J, D: (
                J[:, 2, 1]
                - J[:, 1, 0]
                + Y[:, 0]
                + 0.5 * Y[:, 0] ** 3
                + X[:, 0] * Y[:, 0] * Y[:, 1]
                - D["f"]
            )[:, None],
            pts,
            {"f": fv},
            reduction=red,
        ),
        Hand(
            "defs",
            "constraint",
            lambda X, Y, J, D: torch.stack([Y[:, 1] - J[:, 0, 0], Y[:, 2] - J[:, 0, 1]], 1),
            pts,
            reduction=red,
            form=form,
        ),
        Hand(
            "init",
            "constraint",
            lambda X, Y, J, D: torch.stack([Y[:, 0] - D["g"], X[:, 0] * Y[:, 2]], 1),
            ini,
            {"g": gv},
            reduction=red,
            form=form,
        ),
    ]
    return _net(2, 3, "tanh", dev, seed=3, shift=[-0.2, 0.1]), terms, hands


def neumann(form, mult, red, dev, seed=5):
    """Poisson with a Neumann boundary n . q = g, data normals n1 n2."""
    x, y = fluxkern.inputs("x y")
    u, qx, qy = fluxkern.outputs("u qx qy")
    f, n1, n2, gd = fluxkern.data("f n1 n2 g")
    g = _gen(seed)
    pts, bnd = _rand(g, 8, 2, dev=dev), _rand(g, 7, 2, dev=dev)
    ang = _rand(g, 7, hi=2 * math.pi, dev=dev)
    bdata = {"n1": torch.cos(ang), "n2": torch.sin(ang), "g": _rand(g, 7, lo=-1, dev=dev)}
    fv = _rand(g, 8, lo=-1, dev=dev)
    kw = {"form": form, "multiplier": mult, "reduction": red}
    terms = [
        fluxkern.Objective("pde", qx.d(x) + qy.d(y) + f, pts, {"f": fv}, reduction=red),
        fluxkern.Constraint("flux", [qx - u.d(x), qy - u.d(y)], pts, **kw),
        fluxkern.Constraint("neumann", n1 * qx + n2 * qy - gd, bnd, bdata, **kw),
    ]
    hands = [
        Hand(
            "pde",
            "objective",
            lambda X, Y, J, D: (J[:, 1, 0] + J[:, 2, 1] + D["f"])[:, None],
            pts,
            {"f": fv},
            reduction=red,
        ),
        Hand(
            "flux",
            "constraint",
            lambda X, Y, J, D: torch.stack([Y[:, 1] - J[:, 0, 0], Y[:, 2] - J[:, 0, 1]], 1),
            pts,
            reduction=red,
            form=form,
        ),
        Hand(
            "neumann",
            "constraint",
            lambda X, Y, J, D: (D["n1"] * Y[:, 1] + D["n2"] * Y[:, 2] - D["g"])[:, None],
            bnd,
            bdata,
            reduction=red,
            form=form,
        ),
    ]
    return _net(2, 3, "tanh", dev, seed=4), terms, hands


def periodic(form, mult, red, dev, seed=6):
    """u_t + x v_x = f with v = u_x, and periodic pairs u(0, t) = u(2 pi, t), v likewise, and a
    data-weighted k u_t (k given once per pair, the same on both sides)."""
    x, t = fluxkern.inputs("x t")
    u, v = fluxkern.outputs("u v")
    f, k = fluxkern.data("f k")
    g = _gen(seed)
    pts = _rand(g, 9, 2, hi=2 * math.pi, dev=dev)
    ts = _rand(g, 5, 1, dev=dev)
    a = torch.cat([torch.zeros_like(ts), ts], 1)
    b = torch.cat([torch.full_like(ts, 2 * math.pi), ts], 1)
    fv, kv = _rand(g, 9, dev=dev), _rand(g, 5, lo=0.5, hi=1.5, dev=dev)
    kw = {"form": form, "multiplier": mult, "reduction": red}
    terms = [
        fluxkern.Objective("pde", u.d(t) + x * v.d(x) - f, pts, {"f": fv}, reduction=red),
        fluxkern.Constraint("vdef", v - u.d(x), pts, **kw),
        fluxkern.Constraint("periodic", [u, v, k * u.d(t)], (a, b), {"k": kv}, **kw),
    ]
    hands = [
        Hand(
            "pde",
            "objective",
            lambda X, Y, J, D: (J[:, 0, 1] + X[:, 0] * J[:, 1, 0] - D["f"])[:, None],
            pts,
            {"f": fv},
            reduction=red,
        ),
        Hand(
            "vdef",
            "constraint",
            lambda X, Y, J, D: (Y[:, 1] - J[:, 0, 0])[:, None],
            pts,
            reduction=red,
            form=form,
        ),
        Hand(
            "periodic",
            "constraint",
            lambda X, Y, J, D: torch.stack([Y[:, 0], Y[:, 1], D["k"] * J[:, 0, 1]], 1),
            (a, b),
            {"k": kv},
            reduction=red,
            form=form,
        ),
    ]
    return _net(2, 2, "tanh", dev, seed=5, shift=[math.pi, 0.5], scale=[math.pi, 0.5]), terms, hands


SYSTEMS = {
    "poisson": poisson,
    "diffusion": diffusion,
    "navier_stokes": navier_stokes,
    "cubic": cubic,
    "neumann": neumann,
    "periodic": periodic,
}


# ============================================================================ helpers


def set_multipliers(al, seed=7, lo=-0.5, hi=1.5):
    """Random non-trivial lambda (incl. negative) and mu > 0 in the AL state; returns copies."""
    g = _gen(seed)
    lams, mus = {}, {}
    for name, st in al._state.items():
        lam = lo + (hi - lo) * torch.rand(st["lam"].shape, generator=g, dtype=F64)
        mu = 0.5 + 1.5 * torch.rand(st["mu"].shape, generator=g, dtype=F64)
        st["lam"].copy_(lam)
        st["mu"].copy_(mu)
        lams[name] = st["lam"].detach().clone()
        mus[name] = st["mu"].detach().clone()
    return lams, mus


def check_against_hand(al, net, hands, tol=TOL64):
    """Loss, MLP parameter gradients and constraint values of `al` against the hand oracle."""
    lams = {k: v.detach().clone() for k, v in al.multipliers.items()}
    mus = {k: v.detach().clone() for k, v in al.penalties.items()}
    loss = al()
    grads = torch.autograd.grad(loss, mlp_params(net))
    seq = net.to_sequential()
    want, cs = hand_loss(seq, hands, lams, mus)
    seq_params = [p for m in seq if isinstance(m, torch.nn.Linear) for p in (m.weight, m.bias)]
    want_grads = mlp_grads_from_sequential(net, seq, torch.autograd.grad(want, seq_params))
    assert loss.shape == () and loss.dtype == net.layers[0].weight.dtype
    assert rel_err(loss, want) <= tol, (float(loss.detach()), float(want.detach()))
    assert sum(float(b.norm()) for b in want_grads) > 0
    for i, (a, b) in enumerate(zip(grads, want_grads, strict=True)):
        assert rel_err(a, b) <= tol, f"parameter {i}: rel err {rel_err(a, b):.3e}"
    values = al.constraint_values()
    assert set(values) == set(cs)
    for name, c in cs.items():
        assert values[name].shape == c.shape, name
        assert rel_err(values[name], c) <= tol, name
    return float(loss.detach())


# ============================================================================ systems vs hand


@pytest.mark.parametrize("device,backend", device_backends())
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("multiplier", MULTIPLIERS)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("system", list(SYSTEMS))
def test_loss_and_gradient_match_hand_written(system, form, multiplier, reduction, device, backend):
    net, terms, hands = SYSTEMS[system](form, multiplier, reduction, device)
    al = fluxkern.AugmentedLagrangian(net, terms, backend=backend)
    assert al.backend == backend
    set_multipliers(al)
    for name, lam in al.multipliers.items():
        want = (terms[[t.name for t in terms].index(name)].n, lam.shape[-1])
        assert lam.shape == (want if multiplier == "pointwise" else want[1:])
    check_against_hand(al, net, hands)


@pytest.mark.parametrize("dual", ["pecann", "capu"])
def test_matches_hand_after_dual_updates_with_nonzero_penalty(dual):
    """Multipliers and penalties produced by the rules themselves (mu != 0 after updates)."""
    net, terms, hands = poisson("squared", "pointwise", "mean", "cpu")
    terms[2] = fluxkern.Constraint(
        "bc", terms[2].exprs, terms[2].points, form="squared", multiplier="global", reduction="mean"
    )
    hands[2].form = "squared"
    al = fluxkern.AugmentedLagrangian(net, terms, dual=dual, backend="cpu")
    for _ in range(3):
        al.update_multipliers()
    assert all(bool((mu > 1).all()) for mu in al.penalties.values())
    assert not torch.all(al.multipliers["flux"] == al.multipliers["flux"][0, 0])
    check_against_hand(al, net, hands)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_mixed_blocks_on_one_point_set(backend):
    """Blocks with different reductions, forms and multiplier kinds on the SAME point tensor
    (which the implementation may evaluate together), plus one on an equal-valued copy."""
    x, y = fluxkern.inputs("x y")
    u, qx, qy = fluxkern.outputs("u qx qy")
    f = fluxkern.data("f")
    g = _gen(11)
    pts = _rand(g, 6, 2)
    fv = _rand(g, 6)
    terms = [
        fluxkern.Objective("pde", qx.d(x) + qy.d(y) + f, pts, {"f": fv}, weight=2.0),
        fluxkern.Constraint(
            "cx", qx - u.d(x), pts, form="signed", multiplier="global", reduction="sum"
        ),
        fluxkern.Constraint(
            "cy",
            [qy - u.d(y), u * qx],
            pts,
            form="squared",
            multiplier="pointwise",
            reduction="mean",
        ),
        fluxkern.Constraint(
            "copy", u - f, pts.clone(), {"f": fv * 2}, form="signed", reduction="sum"
        ),
        fluxkern.Objective("obj2", u * u * qy, pts, reduction="sum", weight=0.5),
    ]
    hands = [
        Hand(
            "pde",
            "objective",
            lambda X, Y, J, D: (J[:, 1, 0] + J[:, 2, 1] + D["f"])[:, None],
            pts,
            {"f": fv},
            weight=2.0,
        ),
        Hand(
            "cx",
            "constraint",
            lambda X, Y, J, D: (Y[:, 1] - J[:, 0, 0])[:, None],
            pts,
            form="signed",
            reduction="sum",
        ),
        Hand(
            "cy",
            "constraint",
            lambda X, Y, J, D: torch.stack([Y[:, 2] - J[:, 0, 1], Y[:, 0] * Y[:, 1]], 1),
            pts,
        ),
        Hand(
            "copy",
            "constraint",
            lambda X, Y, J, D: (Y[:, 0] - D["f"])[:, None],
            pts,
            {"f": fv * 2},
            form="signed",
            reduction="sum",
        ),
        Hand(
            "obj2",
            "objective",
            lambda X, Y, J, D: (Y[:, 0] ** 2 * Y[:, 2])[:, None],
            pts,
            weight=0.5,
            reduction="sum",
        ),
    ]
    net = _net(2, 3, "tanh", "cpu", seed=8)
    al = fluxkern.AugmentedLagrangian(net, terms, backend=backend)
    set_multipliers(al, seed=12)
    check_against_hand(al, net, hands)
    # losses() splits the total by block, and the parts add up
    parts = al.losses()
    assert set(parts) == {"pde", "cx", "cy", "copy", "obj2"}
    assert math.isclose(sum(parts.values()), al().item(), rel_tol=TOL64)


def test_paired_blocks_from_a_reused_buffer_keep_their_own_points():
    x, t = fluxkern.inputs("x t")
    u = fluxkern.outputs("u")
    g = _gen(13)
    a, b = _rand(g, 4, 2), _rand(g, 4, 2)
    terms, hands = [], []
    for i in range(3):
        a[:, 0], b[:, 0] = 0.3 * i, 0.3 * i + 1.0  # the user refills one buffer per block
        terms.append(fluxkern.Constraint(f"p{i}", [u, u.d(t)], (a, b)))
        hands.append(
            Hand(
                f"p{i}",
                "constraint",
                lambda X, Y, J, D: torch.stack([Y[:, 0], J[:, 0, 1]], 1),
                (a.clone(), b.clone()),
            )
        )
    assert not torch.equal(terms[0].points, terms[1].points)  # the blocks hold different points
    net = _net(2, 1, "tanh", "cpu", seed=9)
    al = fluxkern.AugmentedLagrangian(net, terms, backend="torch")
    set_multipliers(al, seed=14)
    check_against_hand(al, net, hands)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_paired_data_given_for_both_sides(backend):
    """Paired data as [2N] (a side then b side) differs per side."""
    x, t = fluxkern.inputs("x t")
    u = fluxkern.outputs("u")
    k = fluxkern.data("k")
    g = _gen(15)
    a, b = _rand(g, 5, 2), _rand(g, 5, 2)
    kv = _rand(g, 10, lo=0.5, hi=2)
    terms = [fluxkern.Constraint("p", [k * u, k * u.d(x)], (a, b), {"k": kv}, form="signed")]
    hands = [
        Hand(
            "p",
            "constraint",
            lambda X, Y, J, D: torch.stack([D["k"] * Y[:, 0], D["k"] * J[:, 0, 0]], 1),
            (a, b),
            {"k": kv},
            form="signed",
        )
    ]
    net = _net(2, 1, "tanh", "cpu", seed=10)
    al = fluxkern.AugmentedLagrangian(net, terms, backend=backend)
    set_multipliers(al, seed=16)
    check_against_hand(al, net, hands)


# ============================================================================ sizes


@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("n", [1, 2, 7, 301])
def test_point_counts(n, backend):
    net, terms, hands = poisson("squared", "pointwise", "mean", "cpu", n=n, nb=n)
    al = fluxkern.AugmentedLagrangian(net, terms, backend=backend)
    set_multipliers(al, seed=n)
    check_against_hand(al, net, hands)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_single_periodic_pair(backend):
    x, t = fluxkern.inputs("x t")
    u = fluxkern.outputs("u")
    a = torch.tensor([[0.0, 0.3]], dtype=F64)
    b = torch.tensor([[1.0, 0.3]], dtype=F64)
    terms = [fluxkern.Constraint("p", [u, u.d(x)], (a, b), multiplier="global")]
    hands = [
        Hand("p", "constraint", lambda X, Y, J, D: torch.stack([Y[:, 0], J[:, 0, 0]], 1), (a, b))
    ]
    net = _net(2, 1, "tanh", "cpu", seed=11)
    al = fluxkern.AugmentedLagrangian(net, terms, backend=backend)
    set_multipliers(al, seed=17)
    check_against_hand(al, net, hands)
    assert al.constraint_values()["p"].shape == (1, 2)


@pytest.mark.parametrize(
    "backend",
    ["cpu", "torch"],
)
def test_empty_block_contributes_nothing(backend):
    """N = 0 (DESIGN.md section 6): a block without points adds 0 and C is [0, R]."""
    net, terms, hands = poisson("squared", "pointwise", "mean", "cpu")
    u = fluxkern.outputs("u qx qy")[0]
    empty = fluxkern.Constraint("empty", [u, u * u], torch.zeros(0, 2, dtype=F64))
    base = fluxkern.AugmentedLagrangian(net, terms, backend=backend)
    al = fluxkern.AugmentedLagrangian(net, terms + [empty], backend=backend)
    assert al.multipliers["empty"].shape == (0, 2)
    assert al.constraint_values()["empty"].shape == (0, 2)
    l0, l1 = base(), al()
    assert rel_err(l1, l0) <= TOL64
    assert al.losses()["empty"] == 0.0
    al.update_multipliers()  # must not fail on the empty block


def test_non_contiguous_points_and_data():
    net, _, _ = poisson("squared", "pointwise", "mean", "cpu")
    x, y = fluxkern.inputs("x y")
    u, qx, qy = fluxkern.outputs("u qx qy")
    f = fluxkern.data("f")
    g = _gen(18)
    base = _rand(g, 14, 4)
    pts = base[::2, 1:3]  # [7, 2], strided
    fv = _rand(g, 14)[::2]
    assert not pts.is_contiguous() and not fv.is_contiguous()

    def total(p, fd, backend):
        terms = [
            fluxkern.Objective("pde", qx.d(x) + qy.d(y) + f * u, p, {"f": fd}),
            fluxkern.Constraint("flux", [qx - u.d(x), qy - u.d(y)], p),
        ]
        al = fluxkern.AugmentedLagrangian(net, terms, backend=backend)
        set_multipliers(al, seed=19)
        return al()

    want = total(pts.contiguous(), fv.contiguous(), "torch")
    for backend in ("cpu", "torch"):
        assert rel_err(total(pts, fv, backend), want) <= TOL64


# ============================================================================ float32


@pytest.mark.parametrize("system", ["poisson", "navier_stokes", "periodic"])
def test_float32_fused_close_to_float64(system):
    net64, terms, _ = SYSTEMS[system]("squared", "pointwise", "mean", "cpu")
    net32 = copy.deepcopy(net64).to(F32)
    al64 = fluxkern.AugmentedLagrangian(net64, terms, backend="cpu")
    al32 = fluxkern.AugmentedLagrangian(net32, terms, backend="cpu")
    lams, mus = set_multipliers(al64)
    for name in lams:
        al32._state[name]["lam"].copy_(lams[name])
        al32._state[name]["mu"].copy_(mus[name])
    l64, l32 = al64(), al32()
    assert l32.dtype == F32
    assert rel_err(l32, l64) <= TOL[F32]
    g64 = torch.autograd.grad(l64, mlp_params(net64))
    g32 = torch.autograd.grad(l32, mlp_params(net32))
    for a, b in zip(g32, g64, strict=True):
        assert a.dtype == F32
        assert rel_err(a, b) <= TOL[F32]
    for name, c in al64.constraint_values().items():
        assert rel_err(al32.constraint_values()[name], c) <= TOL[F32]


# ============================================================================ optimisers


def _tiny_poisson(backend):
    """u'' = -pi^2 sin(pi x) on (0, 1) in flux form, u(0) = u(1) = 0."""
    x = fluxkern.inputs("x")
    u, q = fluxkern.outputs("u q")
    f = fluxkern.data("f")
    pts = torch.linspace(0.05, 0.95, 16, dtype=F64)[:, None]
    fv = math.pi**2 * torch.sin(math.pi * pts[:, 0])
    terms = [
        fluxkern.Objective("pde", q.d(x) + f, pts, {"f": fv}),
        fluxkern.Constraint("flux", q - u.d(x), pts),
        fluxkern.Constraint("bc", u, torch.tensor([[0.0], [1.0]], dtype=F64)),
    ]
    torch.manual_seed(20)
    net = fluxkern.MLP(1, 2, 8, 2, dtype=F64)
    return net, fluxkern.AugmentedLagrangian(net, terms, backend=backend)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_adam_steps_decrease_the_loss(backend):
    net, al = _tiny_poisson(backend)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        opt.zero_grad()
        loss = al()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in mlp_params(net))
        opt.step()
        first = loss.item() if first is None else first
    assert al().item() < 0.9 * first
    assert al.last_loss == al().item()


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_lbfgs_closure_decreases_the_loss(backend):
    net, al = _tiny_poisson(backend)
    opt = torch.optim.LBFGS(net.parameters(), max_iter=10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = al()
        loss.backward()
        return loss

    first = al().item()
    for _ in range(2):
        opt.step(closure)
        al.update_multipliers()
    # compare at the multipliers now in place: the primal steps must have helped
    net0, al0 = _tiny_poisson(backend)
    al0.load_state_dict(al.state_dict())
    assert al().item() < al0().item()
    assert al().item() < first


# ============================================================================ the op itself


def _record_op_args(monkeypatch, backend="cpu", system="poisson", **kw):
    """Builds a small float64 problem and records the arguments the AL passes to
    fluxkern.ops.block_loss (so the test follows the op's arguments as the library uses it)."""
    net, terms, _ = SYSTEMS[system](
        kw.get("form", "squared"),
        kw.get("multiplier", "pointwise"),
        kw.get("reduction", "mean"),
        "cpu",
    )
    al = fluxkern.AugmentedLagrangian(net, terms, backend=backend)
    set_multipliers(al)
    calls = []
    real = ops.block_loss

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(ops, "block_loss", spy)
    al()
    monkeypatch.setattr(ops, "block_loss", real)
    assert calls, "the AugmentedLagrangian did not call fluxkern.ops.block_loss"
    return net, al, calls


def _call_args(call):
    """The arguments of a recorded ops.block_loss call without the backend, (program, x, net,
    lam, mu), with fresh leaf weights and biases in net."""
    args, kwargs = call
    assert set(kwargs) <= {"backend"}
    program, x, net, lam, mu = args[:5]
    weights = [w.detach().clone().requires_grad_(True) for w in net.weights]
    biases = [b.detach().clone().requires_grad_(True) for b in net.biases]
    return program, x, MlpSpec(net.shift, net.scale, weights, biases, net.activation), lam, mu


def _op_args(call):
    """Positional arguments of torch.ops.fluxkern.block_loss from a recorded ops.block_loss call."""
    program, *rest = _call_args(call)
    return program.op_args(*rest)


def test_program_packs_the_op_schema_in_order(monkeypatch):
    """ResidualProgram.op_args puts every argument where the registered schema names it, and
    split_op_args is its inverse."""
    _, _, calls = _record_op_args(monkeypatch)
    program, x, net, lam, mu = _call_args(calls[0])
    args = program.op_args(x, net, lam, mu)
    names = [a.name for a in torch.ops.fluxkern.block_loss.default._schema.arguments]
    per_call = {"x": x, "shift": net.shift, "scale": net.scale}
    per_call.update(weights=net.weights, biases=net.biases, activation=net.activation)
    per_call.update(lam=lam, mu=mu)
    assert len(args) == len(names)
    for name, arg in zip(names, args, strict=True):
        want = per_call[name] if name in per_call else getattr(program, name)
        assert arg is want or arg == want, name
    back, x2, net2, lam2, mu2 = split_op_args(args)
    for f in ("table", "coef", "cols", "squared", "red", "n_res", "paired"):  # the op's part
        assert getattr(back, f) is getattr(program, f), f
    assert x2 is x and lam2 is lam and mu2 is mu
    assert net2.shift is net.shift and net2.scale is net.scale
    assert net2.activation == net.activation
    for f in ("weights", "biases"):
        assert all(a is b for a, b in zip(getattr(net2, f), getattr(net, f), strict=True)), f


def test_program_is_immutable(monkeypatch):
    _, al, _ = _record_op_args(monkeypatch)
    program = al._groups[0].program
    with pytest.raises(FrozenInstanceError):
        program.n_res = 1


@pytest.mark.parametrize("system", ["poisson", "periodic"])
def test_opcheck_block_loss(monkeypatch, system):
    _, _, calls = _record_op_args(monkeypatch, system=system, multiplier="global")
    if system == "periodic":  # the paired group
        calls = [c for c in calls if c[0][0].paired]
        assert calls
    for call in calls[:1]:
        torch.library.opcheck(torch.ops.fluxkern.block_loss.default, tuple(_op_args(call)))


def test_op_gradient_is_for_weights_and_biases_only(monkeypatch):
    _, _, calls = _record_op_args(monkeypatch)
    args = _op_args(calls[0])
    args[0] = args[0].detach().clone().requires_grad_(True)
    loss = torch.ops.fluxkern.block_loss(*args)[0]
    with pytest.raises(
        RuntimeError, match="weights and biases only; got inputs that require grad: x"
    ):
        loss.backward()


def test_torch_compile_fullgraph_round_trip(monkeypatch):
    _, _, calls = _record_op_args(monkeypatch, form="signed")
    program, x, net, lam, mu = _call_args(calls[0])
    ws, bs = net.weights, net.biases
    k = len(ws)

    def fn(*params):
        ws_, bs_ = list(params[:k]), list(params[k:])
        net_ = MlpSpec(net.shift, net.scale, ws_, bs_, net.activation)
        loss, c = ops.block_loss(program, x, net_, lam, mu, backend="cpu")
        return 3.0 * loss + 0.0 * c.sum(), c

    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    l_e, c_e = fn(*ws, *bs)
    g_e = torch.autograd.grad(l_e, ws + bs)
    l_c, c_c = compiled(*ws, *bs)
    g_c = torch.autograd.grad(l_c, ws + bs)
    assert rel_err(l_c, l_e) <= TOL64
    assert rel_err(c_c, c_e) <= TOL64
    for a, b in zip(g_c, g_e, strict=True):
        assert rel_err(a, b) <= TOL64


def test_fused_and_torch_twin_agree_on_the_op(monkeypatch):
    _, _, calls = _record_op_args(monkeypatch, system="navier_stokes", reduction="sum")
    for call in calls:
        args = _call_args(call)
        ps = args[2].weights + args[2].biases
        l_f, c_f = ops.block_loss(*args, backend="cpu")
        l_t, c_t = ops.block_loss(*args, backend="torch")
        assert rel_err(l_f, l_t) <= TOL64 and rel_err(c_f, c_t) <= TOL64
        for a, b in zip(torch.autograd.grad(l_f, ps), torch.autograd.grad(l_t, ps), strict=True):
            assert rel_err(a, b) <= TOL64


# ============================================================================ fallback


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_non_polynomial_falls_back_with_warning_and_matches_hand(backend):
    x, y = fluxkern.inputs("x y")
    u, qx, qy = fluxkern.outputs("u qx qy")
    f = fluxkern.data("f")
    g = _gen(21)
    pts = _rand(g, 7, 2)
    fv = _rand(g, 7)
    name = f"sin_block_{backend}"  # a fresh name: the warning is issued once per message
    terms = [
        fluxkern.Objective("pde", qx.d(x) + qy.d(y) + f, pts, {"f": fv}),
        fluxkern.Constraint(
            name,
            [fluxkern.sin(u) - qx, qy - u.d(y) * fluxkern.exp(f * u)],
            pts,
            {"f": fv},
            form="signed",
            multiplier="global",
            reduction="sum",
        ),
        fluxkern.Constraint(f"quartic_{backend}", u**4 - qx.d(y), pts),
    ]
    hands = [
        Hand(
            "pde",
            "objective",
            lambda X, Y, J, D: (J[:, 1, 0] + J[:, 2, 1] + D["f"])[:, None],
            pts,
            {"f": fv},
        ),
        Hand(
            name,
            "constraint",
            lambda X, Y, J, D: torch.stack(
                [torch.sin(Y[:, 0]) - Y[:, 1], Y[:, 2] - J[:, 0, 1] * torch.exp(D["f"] * Y[:, 0])],
                1,
            ),
            pts,
            {"f": fv},
            form="signed",
            reduction="sum",
        ),
        Hand(
            f"quartic_{backend}",
            "constraint",
            lambda X, Y, J, D: (Y[:, 0] ** 4 - J[:, 1, 1])[:, None],
            pts,
        ),
    ]
    net = _net(2, 3, "tanh", "cpu", seed=22)
    with pytest.warns(UserWarning, match=rf"block '{name}': .*sin\(u\).* is not a polynomial"):
        with pytest.warns(UserWarning, match=rf"block 'quartic_{backend}'.*degree <= 3"):
            al = fluxkern.AugmentedLagrangian(net, terms, backend=backend)
    assert not al.bound[name].fused and al.bound["pde"].fused
    set_multipliers(al, seed=23)
    check_against_hand(al, net, hands)


# ============================================================================ state


def _updated_al(dual="rmsprop"):
    net, terms, _ = poisson("squared", "pointwise", "mean", "cpu")
    terms[2] = fluxkern.Constraint("bc", terms[2].exprs, terms[2].points, multiplier="global")
    al = fluxkern.AugmentedLagrangian(net, terms, dual=dual, backend="cpu")
    for _ in range(2):
        al.update_multipliers()
    return net, terms, al


@pytest.mark.parametrize("dual", ["rmsprop", "pecann", "capu"])
def test_state_dict_round_trip_restores_exactly(dual):
    net, terms, al = _updated_al(dual)
    loss_saved = al().item()
    sd = al.state_dict()
    saved = {k: {n: v.clone() for n, v in s.items()} for k, s in sd["state"].items()}
    assert set(sd["state"]) == {"flux", "bc"}
    for _ in range(2):
        al.update_multipliers()
    assert not torch.equal(al.multipliers["flux"], saved["flux"]["lam"])
    # the saved dict is a snapshot: later updates did not change it
    for k, s in saved.items():
        for n, v in s.items():
            assert torch.equal(sd["state"][k][n], v)
    al.load_state_dict(sd)
    for k, s in saved.items():
        for n, v in s.items():
            assert torch.equal(al._state[k][n], v), (k, n)
        assert torch.equal(al.multipliers[k], s["lam"]) and torch.equal(al.penalties[k], s["mu"])
    assert al().item() == loss_saved
    # into a fresh object: same multipliers, same next update
    fresh = fluxkern.AugmentedLagrangian(net, terms, dual=dual, backend="cpu")
    fresh.load_state_dict(sd)
    al.update_multipliers()
    fresh.update_multipliers()
    for k in saved:
        assert torch.equal(fresh.multipliers[k], al.multipliers[k])
        assert torch.equal(fresh.penalties[k], al.penalties[k])
    # updating after a load does not write into the state dict it came from
    for k, s in saved.items():
        assert torch.equal(sd["state"][k]["lam"], s["lam"])


def test_load_state_dict_rejects_mismatched_state():
    net, terms, al = _updated_al("rmsprop")
    sd = al.state_dict()
    before = {k: v.clone() for k, v in al.multipliers.items()}
    _, _, other_rule = _updated_al("capu")
    with pytest.raises(ValueError, match="state is for dual rule 'capu', not 'rmsprop'"):
        al.load_state_dict(other_rule.state_dict())
    renamed = copy.deepcopy(sd)
    renamed["state"]["boundary"] = renamed["state"].pop("bc")
    with pytest.raises(ValueError, match=r"state has constraints \['boundary', 'flux'\], expected"):
        al.load_state_dict(renamed)
    missing = copy.deepcopy(sd)
    del missing["state"]["bc"]
    with pytest.raises(ValueError, match="state has constraints"):
        al.load_state_dict(missing)
    wrong = copy.deepcopy(sd)
    wrong["state"]["flux"]["lam"] = torch.ones(3, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"flux\.lam: shape \[3, 2\] != \[9, 2\]"):
        al.load_state_dict(wrong)
    for k, v in before.items():
        assert torch.equal(al.multipliers[k], v)


def test_load_state_dict_is_all_or_nothing():
    net, terms, al = _updated_al("rmsprop")
    sd = copy.deepcopy(al.state_dict())
    for s in sd["state"].values():
        s["lam"] = s["lam"] + 5.0
    sd["state"]["flux"]["v"] = torch.ones(1, dtype=F64)  # bad shape, found after 'lam'
    before = {k: v.clone() for k, v in al.multipliers.items()}
    with pytest.raises(ValueError):
        al.load_state_dict(sd)
    for k, v in before.items():
        assert torch.equal(al.multipliers[k], v), k


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_calling_the_loss_compiles_fullgraph_and_backpropagates(backend):
    # no host sync or other graph break in al(): the whole call traces as one graph, and the
    # gradients through it equal the eager ones
    if backend not in fluxkern.backends():
        pytest.skip("needs the CPU build")
    net, al = _tiny_poisson(backend)
    params = list(net.parameters())

    def loss_and_grads(fn):
        loss = fn()
        return loss.detach(), torch.autograd.grad(loss, params)

    eager, g_eager = loss_and_grads(al)
    compiled = torch.compile(lambda: al(), fullgraph=True, backend="aot_eager")
    value, g_comp = loss_and_grads(compiled)
    assert rel_err(value, eager) < TOL64
    for a, b in zip(g_comp, g_eager, strict=True):
        assert rel_err(a, b) < TOL64
