"""fluxkern's in-tree PEP 517 build backend: scikit-build-core, built against the user's torch.

The extension links against libtorch, so it only loads next to the torch it was compiled with.
Under pip's build isolation, a static ``torch`` build requirement would let pip put any torch
(a CUDA build, usually) into the throw-away build environment, and the result would not load next
to the user's torch. This backend wraps ``scikit_build_core.build`` and changes two things:

* ``get_requires_for_build_wheel`` / ``_editable`` ask for ``torch==<version>``, the exact
  version (local label included, e.g. ``2.13.0+cpu``) of the torch installed where fluxkern will
  be installed. Under pip's isolation the hooks run in the target interpreter with pip's
  ``PYTHONPATH`` (a ``sitecustomize`` that hides site-packages) and ``PYTHONNOUSERSITE``; the
  target's torch is read by a subprocess of the same interpreter without those two variables.
  Without torch there, the build stops with one message: install torch first.
* ``build_wheel`` / ``build_editable`` stop with the same message when the building Python has no
  torch (``--no-build-isolation`` without torch), compile under pip's isolation in a fresh
  temporary build folder (the build environment, and so torch's paths, are new every time; the
  ``build/`` of a development install is left alone) unless ``-C build-dir=...`` is given, and
  point CMake at the build environment's torch (``Torch_DIR``), then
  load the built extension with the target's torch (in a subprocess) and fail the build, with the
  loader's message, when it does not load.

Environment variables:
    FLUXKERN_BUILD_TORCH: a requirement (e.g. ``torch==2.13.0+cpu``) used instead of the
        detected one, for frontends whose isolated environment is not pip's (``python -m
        build``, uv); the load check is then skipped when the building Python has no torch.
    FLUXKERN_SKIP_LOAD_CHECK: ``1`` skips the load check (cross builds).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from importlib import metadata
from typing import Any

from scikit_build_core import build as _skbuild

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
]

TORCH_ENV = "FLUXKERN_BUILD_TORCH"
SKIP_CHECK_ENV = "FLUXKERN_SKIP_LOAD_CHECK"
_PIP_ISOLATION_VARS = ("PYTHONPATH", "PYTHONNOUSERSITE")
_NO_TORCH = (
    "fluxkern: torch is not installed in the Python that fluxkern is being installed into\n"
    "({python}).\nfluxkern's compiled extension must be built against that torch: install torch "
    "first, then fluxkern, e.g.\n"
    "    pip install torch --index-url https://download.pytorch.org/whl/cpu   # CPU only\n"
    "    pip install . --extra-index-url https://download.pytorch.org/whl/cpu\n"
    "(README.md, section Install). With a frontend other than pip, build with its no-isolation "
    "option or set {env}=torch==<version>."
)
_REBUILD = "pip install --no-build-isolation ."

ConfigSettings = dict[str, str | list[str]] | None


def _pip_isolated() -> bool:
    """Whether this hook runs inside pip's isolated build environment.

    pip sets PYTHONNOUSERSITE=1 and PYTHONPATH to one folder holding the ``sitecustomize.py`` that
    hides the interpreter's own site-packages.
    """
    if os.environ.get("PYTHONNOUSERSITE") != "1":
        return False
    entries = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return any(os.path.isfile(os.path.join(p, "sitecustomize.py")) for p in entries)


def _target_env() -> dict[str, str]:
    """The environment in which ``sys.executable`` sees the target's site-packages."""
    env = dict(os.environ)
    if _pip_isolated():
        for name in _PIP_ISOLATION_VARS:
            env.pop(name, None)
    return env


def _target_torch_version() -> str | None:
    """The distribution version of the target's torch (local label included), or None."""
    if not _pip_isolated():
        try:
            return metadata.version("torch")
        except metadata.PackageNotFoundError:
            return None
    code = (
        "import importlib.metadata as m\n"
        "try:\n    print(m.version('torch'))\n"
        "except m.PackageNotFoundError:\n    pass\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=_target_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return out or None


def _torch_requirement() -> list[str]:
    explicit = os.environ.get(TORCH_ENV, "").strip()
    if explicit:
        return [explicit]
    version = _target_torch_version()
    if version is None:
        sys.exit(_NO_TORCH.format(python=sys.executable, env=TORCH_ENV))
    print(f"fluxkern: building against torch=={version}", file=sys.stderr)
    return [f"torch=={version}"]


def get_requires_for_build_wheel(config_settings: ConfigSettings = None) -> list[str]:
    """scikit-build-core's requirements plus the target's exact torch."""
    return [*_skbuild.get_requires_for_build_wheel(config_settings), *_torch_requirement()]


def get_requires_for_build_editable(config_settings: ConfigSettings = None) -> list[str]:
    """scikit-build-core's requirements plus the target's exact torch."""
    return [*_skbuild.get_requires_for_build_editable(config_settings), *_torch_requirement()]


def get_requires_for_build_sdist(config_settings: ConfigSettings = None) -> list[str]:
    """scikit-build-core's requirements (an sdist compiles nothing)."""
    return _skbuild.get_requires_for_build_sdist(config_settings)


def build_sdist(sdist_directory: str, config_settings: ConfigSettings = None) -> str:
    """scikit-build-core's sdist."""
    return _skbuild.build_sdist(sdist_directory, config_settings)


_LOAD = """
import json, importlib.util, sys
import torch
spec = importlib.util.spec_from_file_location("fluxkern._C", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
print(json.dumps({"torch": torch.__version__, "cuda": bool(mod.build_info().get("cuda"))}))
"""


def _check_loads(wheel_path: str) -> None:
    """Loads the wheel's extension with the target's torch; exits with the reason if it fails."""
    if os.environ.get(SKIP_CHECK_ENV) == "1":
        return
    if os.environ.get(TORCH_ENV, "").strip() and _target_torch_version() is None:
        print(
            f"fluxkern: {TORCH_ENV} is set and there is no torch here: no load check",
            file=sys.stderr,
        )
        return
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    with zipfile.ZipFile(wheel_path) as whl:
        members = [
            n for n in whl.namelist() if n.startswith("fluxkern/_C.") and n.endswith(suffixes)
        ]
        if not members:
            sys.exit(f"fluxkern: the built wheel {wheel_path} has no compiled extension _C")
        with tempfile.TemporaryDirectory(prefix="fluxkern-load-check-") as tmp:
            path = whl.extract(members[0], tmp)
            run = subprocess.run(
                [sys.executable, "-c", _LOAD, path],
                env=_target_env(),
                cwd=tmp,
                capture_output=True,
                text=True,
            )
    if run.returncode != 0:
        tail = "\n".join(run.stderr.strip().splitlines()[-5:])
        sys.exit(
            f"fluxkern: the extension just built does not load with the torch of {sys.executable}"
            f":\n{tail}\nInstall torch first, then build against it: {_REBUILD} (README.md, "
            "section Install)."
        )
    info: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    kernels = "CPU and CUDA" if info["cuda"] else "CPU"
    print(
        f"fluxkern: the extension loads with torch {info['torch']} ({kernels} kernels)",
        file=sys.stderr,
    )


def _torch_cmake_dir() -> str:
    """The folder of TorchConfig.cmake of the torch this Python would import (not imported)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(_NO_TORCH.format(python=sys.executable, env=TORCH_ENV))
    return os.path.join(list(spec.submodule_search_locations)[0], "share", "cmake", "Torch")


def _build(
    build: Callable[[str, ConfigSettings, str | None], str],
    wheel_directory: str,
    config_settings: ConfigSettings,
    metadata_directory: str | None,
) -> str:
    """Runs scikit-build-core's ``build`` (wheel or editable), then the load check."""
    try:
        metadata.version("torch")
    except metadata.PackageNotFoundError:
        sys.exit(_NO_TORCH.format(python=sys.executable, env=TORCH_ENV))
    settings = dict(config_settings or {})
    with tempfile.TemporaryDirectory(prefix="fluxkern-build-") as tmp:
        if _pip_isolated():
            if not any(k.endswith("build-dir") for k in settings):
                settings["build-dir"] = tmp
            # scikit-build-core puts the target's site-packages on CMAKE_PREFIX_PATH too, ahead of
            # the build env's, so CMake would take torch's headers from the target's torch and its
            # libraries from the build env's (the same version, but two copies): name one.
            if not any(k.endswith("define.Torch_DIR") for k in settings):
                settings["cmake.define.Torch_DIR"] = _torch_cmake_dir()
        name = build(wheel_directory, settings, metadata_directory)
    _check_loads(os.path.join(wheel_directory, name))
    return name


def build_wheel(
    wheel_directory: str,
    config_settings: ConfigSettings = None,
    metadata_directory: str | None = None,
) -> str:
    """scikit-build-core's wheel, built against the target's torch and checked to load with it."""
    return _build(_skbuild.build_wheel, wheel_directory, config_settings, metadata_directory)


def build_editable(
    wheel_directory: str,
    config_settings: ConfigSettings = None,
    metadata_directory: str | None = None,
) -> str:
    """scikit-build-core's editable wheel, built and checked like :func:`build_wheel`."""
    return _build(_skbuild.build_editable, wheel_directory, config_settings, metadata_directory)


if hasattr(_skbuild, "prepare_metadata_for_build_wheel"):

    def prepare_metadata_for_build_wheel(
        metadata_directory: str, config_settings: ConfigSettings = None
    ) -> str:
        """scikit-build-core's metadata (no build)."""
        return _skbuild.prepare_metadata_for_build_wheel(metadata_directory, config_settings)

    def prepare_metadata_for_build_editable(
        metadata_directory: str, config_settings: ConfigSettings = None
    ) -> str:
        """scikit-build-core's metadata (no build)."""
        return _skbuild.prepare_metadata_for_build_editable(metadata_directory, config_settings)

    __all__ += ["prepare_metadata_for_build_editable", "prepare_metadata_for_build_wheel"]
