import hashlib
import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# torch.compile's on-disk caches do not hash the fake kernels of custom ops: a compiled graph
# cached by another checkout (or before a fake kernel changed) can expect other output shapes.
# Tests therefore compile into a cache of their own, keyed by the file that holds the fakes.
_FAKES = os.path.join(os.path.dirname(__file__), "..", "python", "fluxkern", "ops.py")
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ and os.path.exists(_FAKES):
    with open(_FAKES, "rb") as _f:
        _key = hashlib.sha256(_f.read()).hexdigest()[:16]
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(
        tempfile.gettempdir(), f"torchinductor-fluxkern-{_key}"
    )


@pytest.fixture
def one_thread():
    """One torch thread for the test: faster and steadier than two on a shared 2-core machine
    (files that train use it for every test: pytestmark = usefixtures("one_thread"))."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def small(monkeypatch):
    """poisson with few points and a small net: a 1-epoch solve takes about a second (for the
    command line's tests: fluxkern.problems.get is replaced)."""
    from fluxkern import problems

    original = problems.get

    def get(name):
        p = original(name)
        p.defaults = {**p.defaults, "n_interior": 32, "n_boundary": 16}
        p.width, p.depth = 6, 1
        return p

    monkeypatch.setattr(problems, "get", get)
