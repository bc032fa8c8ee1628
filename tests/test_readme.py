"""The README's Python examples run as written (with fewer epochs)."""

from __future__ import annotations

import os
import re

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def _blocks() -> list[str]:
    text = open(README).read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_readme_example_runs(index):
    code = _blocks()[index].replace("range(200)", "range(2)").replace("8192", "256")
    exec(compile(code, f"README.md example {index}", "exec"), {})
