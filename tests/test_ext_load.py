"""Loading the compiled extension: one clear warning when a compiled file exists but does not
load, silence when there is none, and a type stub that matches the module."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
import torch

import fluxkern
from fluxkern import _ext

PACKAGE = os.path.dirname(os.path.abspath(fluxkern.__file__))
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")  # e.g. .cpython-311-x86_64-linux-gnu.so

# Imports fluxkern with every warning recorded; prints them and the backends as JSON.
PROBE = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fluxkern
print(json.dumps({
    "warnings": [[w.category.__name__, str(w.message)] for w in caught],
    "backends": fluxkern.backends(),
}))
"""


def _import_copy(tmp_path, extension: bytes | None) -> dict:
    """Imports a copy of the package (its compiled file replaced) in a fresh interpreter."""
    dest = tmp_path / "fluxkern"
    shutil.copytree(PACKAGE, dest, ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    if extension is not None:
        (dest / f"_C{SUFFIX}").write_bytes(extension)
    # -S: no site-packages .pth files (an editable fluxkern's finder would win); torch's folder
    # goes on the path instead.
    torch_site = os.path.dirname(os.path.dirname(os.path.abspath(torch.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), torch_site]))
    run = subprocess.run(
        [sys.executable, "-S", "-c", PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_broken_extension_warns_once_with_the_loader_message(tmp_path):
    out = _import_copy(tmp_path, b"not an ELF file, deliberately broken\n" * 4)
    assert out["backends"] == ["torch"]
    ours = [msg for cat, msg in out["warnings"] if cat == "ExtensionLoadWarning"]
    assert len(ours) == 1, out["warnings"]
    msg = ours[0]
    assert f"_C{SUFFIX}" in msg
    assert "ImportError" in msg
    assert "invalid ELF header" in msg or "too short" in msg  # the dynamic loader's words
    assert "pip install --no-build-isolation -e ." in msg
    assert "README.md, section Install" in msg


def test_no_extension_is_silent(tmp_path):
    out = _import_copy(tmp_path, None)
    assert out["backends"] == ["torch"]
    assert out["warnings"] == []


def test_warning_category_is_public():
    assert issubclass(fluxkern.ExtensionLoadWarning, RuntimeWarning)


def _stub_names() -> set[str]:
    with open(os.path.join(PACKAGE, "_C.pyi")) as f:
        tree = ast.parse(f.read())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_package_is_typed():
    assert os.path.isfile(os.path.join(PACKAGE, "py.typed"))
    assert "build_info" in _stub_names()


@pytest.mark.skipif(not _ext.available(), reason="the extension is not built")
def test_stub_lists_what_the_module_exposes():
    names = {n for n in dir(_ext.module()) if not n.startswith("__")}
    assert _stub_names() == names
