#!/usr/bin/env bash
# Installs fluxkern the ways README.md (section Install) gives, each into a fresh virtualenv that
# has the CPU build of torch, from a clean copy of this tree (no build/ folder: every install
# compiles the C++ sources from scratch, a few minutes each on 2 cores), and checks from outside
# the source tree that the compiled extension loads ("cpu" in fluxkern.backends()):
#   0. venv A without torch: `pip install .` stops at once with the "install torch first" message;
#   1. venv A with torch: `pip install .` (pip's build isolation; the build env gets this torch);
#   2. venv B with torch and the build prerequisites: `pip install --no-build-isolation .`.
# Not a pytest file: `make install-check` runs it (CI too).
#
# Environment: PYTHON (python3), TORCH_SPEC (torch==2.13.0), TORCH_PIP_ARGS (extra pip options
# for torch and for step 1's build env, e.g. "--extra-index-url https://download.pytorch.org/whl/cpu"
# where no local wheel directory provides the CPU build), KEEP=1 keeps the temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
read -r -a TORCH_PIP_ARGS <<<"${TORCH_PIP_ARGS:-}"
# The README's build prerequisites for --no-build-isolation (CMake from the system when found).
BUILD_PREREQS=(scikit-build-core pybind11 ninja)
command -v cmake >/dev/null || BUILD_PREREQS+=(cmake)
PIP_OPTS=(--disable-pip-version-check -q)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fluxkern-install-check.XXXXXX")
if [[ "${KEEP:-0}" == 1 ]]; then
  echo "install-check: keeping $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi
step() { echo "install-check: $*"; }
elapsed() { echo "install-check:   done in $((SECONDS - $1)) s"; }

# A clean copy of the sources: tracked and untracked-but-not-ignored files (what a fresh clone
# plus local edits has), never build/ or other ignored outputs.
mkdir "$tmp/src"
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -xf - -C "$tmp/src"

# Checks, from outside the source tree, that fluxkern imports with its compiled extension.
check_installed() {
  (cd "$tmp" && "$1/bin/python" - "$tmp/src") <<'PY'
import os, sys, warnings

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fluxkern
import torch

pkg = os.path.dirname(os.path.abspath(fluxkern.__file__))
assert not pkg.startswith(os.path.abspath(sys.argv[1])), f"imported from the source tree: {pkg}"
bad = [str(w.message) for w in caught if issubclass(w.category, fluxkern.ExtensionLoadWarning)]
assert not bad, bad
assert "cpu" in fluxkern.backends(), (fluxkern.backends(), fluxkern.build_info())
for name in ("py.typed", "_C.pyi"):
    assert os.path.isfile(os.path.join(pkg, name)), f"{name} is not installed in {pkg}"
info = fluxkern.build_info()
print(f"install-check:   ok: backends {fluxkern.backends()}, torch {torch.__version__}, "
      f"built against torch {info['torch_version_built_against']}, from {pkg}")
PY
}

A="$tmp/venv-a"
B="$tmp/venv-b"
step "venv A ($PYTHON), no torch: pip install . must stop with the 'install torch first' message"
t=$SECONDS
"$PYTHON" -m venv "$A"
if out=$(cd "$tmp/src" && "$A/bin/pip" install "${PIP_OPTS[@]}" . 2>&1); then
  echo "$out"; echo "install-check: pip install . succeeded without torch" >&2; exit 1
fi
grep -q "install torch" <<<"$out" || { echo "$out"; echo "install-check: no clear message" >&2; exit 1; }
elapsed $t

step "venv A: pip install $TORCH_SPEC, then pip install . (build isolation)"
t=$SECONDS
"$A/bin/pip" install "${PIP_OPTS[@]}" "$TORCH_SPEC" "${TORCH_PIP_ARGS[@]}"
(cd "$tmp/src" && "$A/bin/pip" install "${PIP_OPTS[@]}" . "${TORCH_PIP_ARGS[@]}")
check_installed "$A"
elapsed $t

step "venv B: pip install $TORCH_SPEC ${BUILD_PREREQS[*]}, then pip install --no-build-isolation ."
t=$SECONDS
rm -rf "$tmp/src/build"  # nothing from step 1's build either
"$PYTHON" -m venv "$B"
"$B/bin/pip" install "${PIP_OPTS[@]}" "$TORCH_SPEC" "${TORCH_PIP_ARGS[@]}"
"$B/bin/pip" install "${PIP_OPTS[@]}" "${BUILD_PREREQS[@]}"
(cd "$tmp/src" && "$B/bin/pip" install "${PIP_OPTS[@]}" --no-build-isolation .)
check_installed "$B"
elapsed $t
step "all passed"
