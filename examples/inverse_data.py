"""The measurements of the inverse examples, generated from their exact solutions with 1% noise.

    python examples/inverse_data.py        # rewrites examples/data/inverse_*.csv

Each CSV has a header row (inputs, then measured fields) and one row per sensor. Noise: Gaussian
with standard deviation 1% of the RMS of the field's exact values at the sensors, seeded
(numpy's default_rng(2026)), so the files are reproducible.
"""

from __future__ import annotations

import csv
import math
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
NOISE = 0.01

# inverse_heat: u_t = kappa (u_xx + u_yy) on [0, 1]^2 x [0, 1]
KAPPA = 0.1


def heat_u(x, y, t):
    return np.exp(-2 * KAPPA * math.pi**2 * t) * np.sin(math.pi * x) * np.sin(math.pi * y)


# inverse_kovasznay: Kovasznay flow at Re 20 (convection coefficient 1, viscosity 1 / Re)
RE = 20.0
LAM = RE / 2 - math.sqrt(RE**2 / 4 + 4 * math.pi**2)


def kovasznay(x, y):
    e = np.exp(LAM * x)
    c, s = np.cos(2 * math.pi * y), np.sin(2 * math.pi * y)
    return 1 - e * c, LAM / (2 * math.pi) * e * s, 0.5 * (1 - e * e)


# inverse_conductivity: -(k u')' = f on [0, 1], k(x) = 1 + 0.5 sin(2 pi x), u = x + 0.2 sin(pi x)
def cond_k(x):
    return 1 + 0.5 * np.sin(2 * math.pi * x)


def cond_u(x):
    return x + 0.2 * np.sin(math.pi * x)


def _noisy(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    sigma = NOISE * math.sqrt(float(np.mean(values**2)))
    return values + sigma * rng.standard_normal(values.shape)


def _write(name: str, header: list[str], columns: list[np.ndarray]) -> None:
    os.makedirs(DATA, exist_ok=True)
    with open(os.path.join(DATA, name), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in zip(*columns, strict=True):
            w.writerow([f"{v:.17g}" for v in row])


def main() -> None:
    rng = np.random.default_rng(2026)
    # 50 sensors in the space-time interior of the heat problem
    x, y, t = rng.uniform(0.05, 0.95, 50), rng.uniform(0.05, 0.95, 50), rng.uniform(0, 1, 50)
    _write("inverse_heat.csv", ["x", "y", "t", "u"], [x, y, t, _noisy(rng, heat_u(x, y, t))])
    # 100 samples of velocity and pressure in Kovasznay's domain [-0.5, 1] x [-0.5, 1.5]
    x, y = rng.uniform(-0.5, 1.0, 100), rng.uniform(-0.5, 1.5, 100)
    uu, vv, pp = kovasznay(x, y)
    cols = [x, y, _noisy(rng, uu), _noisy(rng, vv), _noisy(rng, pp)]
    _write("inverse_kovasznay.csv", ["x", "y", "u", "v", "p"], cols)
    # 40 temperature samples for the conductivity field
    x = rng.uniform(0, 1, 40)
    _write("inverse_conductivity.csv", ["x", "u"], [x, _noisy(rng, cond_u(x))])


if __name__ == "__main__":
    main()
