"""Where a trained examples/allen_cahn.py network is wrong: its u and q = e u_x against the
reference (ETDRK4, 2048 Fourier modes; q by the spectral derivative) near the periodic seam
x = +-1 (|x| > 0.95) and elsewhere, at several times. The conditioning check flags q there
(docs/guide/trust.md).

    python bench/allen_cahn_seam.py RUN_DIR    # a `fluxkern solve examples/allen_cahn.py` --out
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import torch

from fluxkern.problems import resolve
from fluxkern.solver import build_model

EXAMPLE = "examples/allen_cahn.py"


def main(run: str) -> int:
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("allen_cahn", EXAMPLE)
    assert spec is not None and spec.loader is not None
    ac = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ac)
    model = build_model(resolve(EXAMPLE), "flux", torch.float64, torch.device("cpu"))
    model.load_state_dict(torch.load(f"{run}/model.pt", weights_only=True)["model"])
    xs, ts, u_ref = ac.reference_solution()  # [n], [T], [T, n]
    k = np.pi * np.fft.fftfreq(xs.size, d=1.0 / xs.size)
    q_ref = ac.EPS * np.real(np.fft.ifft(1j * k * np.fft.fft(u_ref, axis=1), axis=1))
    seam = np.abs(xs) > 0.95
    print("| t | q's range | max abs q error at the seam / elsewhere | u at the seam / elsewhere |")
    print("|---|---|---|---|")
    for i in (2, 5, 10, 20, 100, 200):
        pts = torch.tensor(np.stack([xs, np.full(xs.size, ts[i])], 1))
        with torch.no_grad():
            y = model(pts).numpy()
        eq, eu = np.abs(y[:, 1] - q_ref[i]), np.abs(y[:, 0] - u_ref[i])
        print(
            f"| {ts[i]:.3f} | {np.ptp(q_ref[i]):.3f} | {eq[seam].max():.1e} / {eq[~seam].max():.1e}"
            f" | {eu[seam].max():.1e} / {eu[~seam].max():.1e} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
