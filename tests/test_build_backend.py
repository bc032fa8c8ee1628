"""The in-tree build backend (build_backend/fluxkern_build.py) without building anything: the torch
it asks for, its message without torch, and its load check on a wheel."""

from __future__ import annotations

import os
import sys
import sysconfig
import zipfile
from importlib import metadata

import pytest

from fluxkern import _ext

pytest.importorskip("scikit_build_core")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build_backend"))
import fluxkern_build  # noqa: E402

SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


@pytest.fixture(autouse=True)
def _in_the_source_tree(monkeypatch):
    """scikit-build-core's hooks read ./pyproject.toml, as under pip."""
    monkeypatch.chdir(ROOT)


@pytest.fixture
def pip_isolation(tmp_path, monkeypatch):
    """The two variables pip's isolated build environment sets (a sitecustomize on PYTHONPATH)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("PYTHONNOUSERSITE", "1")
    monkeypatch.delenv(fluxkern_build.TORCH_ENV, raising=False)


def test_not_isolated_without_pips_variables(monkeypatch):
    monkeypatch.delenv("PYTHONNOUSERSITE", raising=False)
    assert not fluxkern_build._pip_isolated()


def test_asks_for_the_targets_exact_torch(pip_isolation):
    assert fluxkern_build._pip_isolated()
    env = fluxkern_build._target_env()
    assert "PYTHONPATH" not in env and "PYTHONNOUSERSITE" not in env
    # the distribution version (local label included), read by a subprocess of this Python
    want = f"torch=={metadata.version('torch')}"
    assert fluxkern_build.get_requires_for_build_wheel()[-1] == want
    assert fluxkern_build.get_requires_for_build_editable()[-1] == want


def test_explicit_torch_requirement(monkeypatch):
    monkeypatch.setenv(fluxkern_build.TORCH_ENV, "torch==2.13.0+cpu")
    assert fluxkern_build.get_requires_for_build_wheel()[-1] == "torch==2.13.0+cpu"


def test_without_torch_says_install_torch_first(pip_isolation, monkeypatch):
    monkeypatch.setattr(fluxkern_build, "_target_torch_version", lambda: None)
    with pytest.raises(SystemExit) as exc:
        fluxkern_build.get_requires_for_build_wheel()
    assert "install torch first" in str(exc.value)
    assert "README.md, section Install" in str(exc.value)


def _wheel(tmp_path, extension: bytes):
    path = tmp_path / "fluxkern-0.1.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr("fluxkern/__init__.py", "")
        whl.writestr(f"fluxkern/_C{SUFFIX}", extension)
    return str(path)


def test_load_check_fails_loudly_on_a_broken_extension(tmp_path, monkeypatch):
    monkeypatch.delenv(fluxkern_build.SKIP_CHECK_ENV, raising=False)
    with pytest.raises(SystemExit) as exc:
        fluxkern_build._check_loads(_wheel(tmp_path, b"garbage, not an ELF file\n" * 4))
    msg = str(exc.value)
    assert "does not load" in msg and "pip install --no-build-isolation ." in msg
    assert "ELF" in msg or "too short" in msg  # the loader's own words


@pytest.mark.skipif(not _ext.available(), reason="the extension is not built")
def test_load_check_passes_on_a_working_extension(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(fluxkern_build.SKIP_CHECK_ENV, raising=False)
    with open(_ext.module().__file__, "rb") as f:
        fluxkern_build._check_loads(_wheel(tmp_path, f.read()))
    assert "the extension loads with torch" in capsys.readouterr().err
