# fluxkern: set-up, tests, demo and benchmarks. Everything installs into ./.venv.
#   make setup   create .venv if missing, install torch (kept if already there) and fluxkern
#   make test    setup, then the whole test suite
#   make demo    setup, then the main job
#   make lint    ruff and clang-format checks
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
# The torch installed when the venv has none: the CPU wheel (pip here finds it on local disk;
# elsewhere add TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu").
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
DEPS := scikit-build-core pybind11 numpy scipy matplotlib pytest expecttest ninja ruff clang-format
SOURCES := $(shell find csrc python -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' \)) \
           CMakeLists.txt pyproject.toml
PYTEST_ARGS ?=

.PHONY: setup test demo bench bench-jet lint format clean

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

demo: setup
	$(VPY) bench/bench_jet.py --min-time 0.3

bench-jet: setup
	$(VPY) bench/bench_jet.py

lint: setup
	$(VENV)/bin/ruff check python tests bench
	$(VENV)/bin/ruff format --check python tests bench
	$(VENV)/bin/clang-format --dry-run -Werror $$(find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu')

format: setup
	$(VENV)/bin/ruff format python tests bench
	$(VENV)/bin/ruff check --fix python tests bench
	$(VENV)/bin/clang-format -i $$(find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu')

clean:
	rm -rf build build-cuda
