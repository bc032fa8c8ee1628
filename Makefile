# fluxkern: set-up, tests, demo and benchmarks. Everything installs into ./.venv.
#   make setup   create .venv if missing, install torch (kept if already there) and fluxkern
#   make test    setup, then the whole test suite
#   make demo    setup, then the main job
#   make lint    ruff and clang-format checks
#   make install-check   pip install . and pip install --no-build-isolation . into fresh venvs
#   make docs    the documentation into site/ (MkDocs, --strict)
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
# The torch installed when the venv has none: the CPU wheel (pip here finds it on local disk;
# elsewhere add TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu").
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
DEPS := scikit-build-core pybind11 numpy scipy matplotlib pytest expecttest hypothesis ninja ruff clang-format
SOURCES := $(shell find csrc python -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' \)) \
           CMakeLists.txt pyproject.toml build_backend/fluxkern_build.py
PYTEST_ARGS ?=

.PHONY: setup test demo bench bench-jet bench-loss problems lint format clean install-check

setup: $(VENV)/.fluxkern-built

$(VPY):
	$(PYTHON) -m venv $(VENV)

# torch: never re-downloaded when the venv already has one (CPU or CUDA build).
$(VENV)/.deps: $(VPY)
	@if $(VPY) -c "import torch" 2>/dev/null; then \
	  echo "torch $$($(VPY) -c 'import torch; print(torch.__version__)') already installed"; \
	else \
	  $(VPY) -m pip install --disable-pip-version-check -q "$(TORCH_SPEC)" $(TORCH_PIP_ARGS); \
	fi
	$(VPY) -m pip install --disable-pip-version-check -q $(DEPS)
	touch $@

# Editable install: Python edits take effect at once; C++ edits rebuild incrementally in build/.
$(VENV)/.fluxkern-built: $(VENV)/.deps $(SOURCES)
	$(VPY) -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps -e .
	touch $@

test: setup
	$(VPY) -m pytest -q $(PYTEST_ARGS)

# The main job: the poisson demo in flux form with its defaults (under 2 minutes on 2 cores).
demo: setup
	$(VENV)/bin/fluxkern solve poisson --out runs/poisson-demo

# make bench: the side-by-side benchmarks (bench/run.py) in their own environment, .venv-bench:
# fluxkern (built into build-bench/) plus the contenders, DeepXDE with its pytorch backend among
# them (installed there only; never a fluxkern dependency). Writes bench/results/<machine>-<date>.*
# Takes about an hour on 2 cores; BENCH_ARGS="--quick" for a smoke run.
BENCH_VENV ?= .venv-bench
BENCH_VPY := $(BENCH_VENV)/bin/python
BENCH_DEPS := deepxde==1.15.0
BENCH_ARGS ?=

$(BENCH_VPY):
	$(PYTHON) -m venv $(BENCH_VENV)

$(BENCH_VENV)/.deps: $(BENCH_VPY)
	@if $(BENCH_VPY) -c "import torch" 2>/dev/null; then :; else \
	  $(BENCH_VPY) -m pip install --disable-pip-version-check -q "$(TORCH_SPEC)" $(TORCH_PIP_ARGS); \
	fi
	$(BENCH_VPY) -m pip install --disable-pip-version-check -q $(DEPS) $(BENCH_DEPS)
	touch $@

$(BENCH_VENV)/.fluxkern-built: $(BENCH_VENV)/.deps $(SOURCES)
	$(BENCH_VPY) -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps \
	  -C build-dir=build-bench .
	touch $@

bench: $(BENCH_VENV)/.fluxkern-built
	DDE_BACKEND=pytorch $(BENCH_VPY) -m bench $(BENCH_ARGS)

bench-jet: setup
	$(VPY) bench/bench_jet.py

bench-loss: setup
	$(VPY) bench/bench_loss.py

# Every benchmark problem, flux and PINN forms, into results/ (long: see bench/run_problems.py).
problems: setup
	$(VPY) bench/run_problems.py

lint: setup
	$(VENV)/bin/ruff check python tests bench build_backend
	$(VENV)/bin/ruff format --check python tests bench build_backend
	$(VENV)/bin/clang-format --dry-run -Werror $$(find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh')

format: setup
	$(VENV)/bin/ruff format python tests bench build_backend
	$(VENV)/bin/ruff check --fix python tests bench build_backend
	$(VENV)/bin/clang-format -i $$(find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh')

# The two installs of README.md (section Install) into fresh venvs with the CPU torch, from a clean
# copy of the tree, each compiling from scratch (about 10 minutes on 2 cores; tests/install_check.sh).
install-check:
	PYTHON="$(PYTHON)" TORCH_SPEC="$(TORCH_SPEC)" TORCH_PIP_ARGS="$(TORCH_PIP_ARGS)" \
	  bash tests/install_check.sh

clean:
	rm -rf build build-cuda build-bench

# make docs: the documentation (docs/*.md and an API reference generated from the docstrings by
# static analysis, no import) as a static site in site/, with MkDocs; warnings are errors
# (--strict). Installs the MkDocs packages into .venv; needs no build of the extension.
DOCS_DEPS := mkdocs==1.6.1 mkdocs-material==9.8.2 mkdocstrings==1.0.8 mkdocstrings-python==2.0.11

.PHONY: docs

$(VENV)/.docs-deps: $(VPY)
	$(VPY) -m pip install --disable-pip-version-check -q $(DOCS_DEPS)
	touch $@

docs: $(VENV)/.docs-deps
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# ---------------------------------------------------------------------------------------------
# make cuda-build: compiles and links the CUDA variant of the extension in its own venv
# (.venv-cuda, build dir build-cuda/) against a CUDA build of torch, for CUDA_ARCHS, then checks
# the result (tests/check_cuda_build.py). Needs nvcc (CUDA 13.0 here, matching the torch wheel);
# no GPU: nothing runs on one. Fails when nvcc is missing or the build has no CUDA kernels.
CUDA_VENV ?= .venv-cuda
CUDA_VPY := $(CUDA_VENV)/bin/python
# pip here finds the CUDA 13.0 build of this torch on local disk; elsewhere add
# CUDA_TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cu130".
CUDA_TORCH_SPEC ?= torch==2.14.1
CUDA_TORCH_PIP_ARGS ?=
CUDA_DEPS := scikit-build-core pybind11 numpy ninja
CUDA_ARCHS ?= 80;90
CUDA_BUILD_DIR ?= build-cuda
# nvcc: $CUDACXX, else the one on PATH, else the default toolkit location.
NVCC := $(or $(CUDACXX),$(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))

.PHONY: cuda-build

$(CUDA_VPY):
	$(PYTHON) -m venv $(CUDA_VENV)

$(CUDA_VENV)/.deps: $(CUDA_VPY)
	$(CUDA_VPY) -m pip install --disable-pip-version-check -q "$(CUDA_TORCH_SPEC)" \
	  $(CUDA_TORCH_PIP_ARGS) $(CUDA_DEPS)
	@$(CUDA_VPY) -c "import sys, torch; sys.exit(0 if torch.version.cuda else \
	  'cuda-build: torch ' + torch.__version__ + ' in $(CUDA_VENV) is not a CUDA build')"
	touch $@

cuda-build: $(CUDA_VENV)/.deps
	@test -n "$(NVCC)" && "$(NVCC)" --version >/dev/null || { echo "cuda-build: nvcc not found \
	(set CUDACXX or put the CUDA toolkit's bin on PATH)" >&2; exit 1; }
	CUDACXX="$(NVCC)" FLUXKERN_CUDA=ON $(CUDA_VPY) -m pip install --disable-pip-version-check -q \
	  --no-build-isolation --no-deps -C build-dir=$(CUDA_BUILD_DIR) \
	  -C cmake.define.FLUXKERN_CUDA=ON "-Ccmake.define.CMAKE_CUDA_ARCHITECTURES=$(CUDA_ARCHS)" .
	$(CUDA_VPY) tests/check_cuda_build.py $(subst ;, ,$(CUDA_ARCHS))
