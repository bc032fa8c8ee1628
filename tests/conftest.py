import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


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
