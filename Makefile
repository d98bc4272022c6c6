# mlx-audio workspace tasks. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
OPENBLAS := $(firstword $(wildcard /usr/lib/$(shell uname -m)-linux-gnu/openblas-pthread/libopenblas.so.0))
# MLX's Linux CPU wheels bundle reference BLAS; OpenBLAS makes CPU training ~10x faster.
# (mlx_audio also loads it by itself when imported before mlx.core: see docs/design notes.)
RUN_ENV := $(if $(OPENBLAS),LD_PRELOAD=$(OPENBLAS),)
APT_PACKAGES := libopenblas0-pthread espeak-ng
ANCHOR := .venv-anchor
PYTEST_ARGS ?=
SYNC_FLAGS ?=

.PHONY: demo test docs uv system-deps sync build bench anchor lint clean

# The main job through the command line: data (once), train (resumes; a finished run has nothing
# to do), accuracy on held-out voices, curves. examples/demo.py is the same job in Python.
demo: sync
	$(RUN_ENV) $(UV) run --no-sync python examples/spoken_digits.py --root data/spoken_digits
	$(RUN_ENV) $(UV) run --no-sync mlx-audio train --config examples/demo.yaml --resume
	$(RUN_ENV) $(UV) run --no-sync mlx-audio evaluate --run demo_run --data data/spoken_digits/val.csv
	$(RUN_ENV) $(UV) run --no-sync mlx-audio plot demo_run

# The tests start hundreds of Python processes (mlx.launch ranks, CLI runs, the mlflow server...).
# Where PYTHONDONTWRITEBYTECODE is set (as on the 2-core machine measured) none keeps the bytecode it
# compiles, so each compiled its imports again: make test compiles it once instead, the venv's with
# `uv sync --compile-bytecode` (+17 s on a fresh venv) and ours with compileall (<1 s); the
# subprocess-heavy tests take about 50 s less. tests/mlx_jit_header.py precompiles the header of
# the C++ kernels MLX compiles for mx.compile on Linux (~1,300 in the suite, 0.9 -> 0.2 s each).
test: SYNC_FLAGS += $(if $(PYTHONDONTWRITEBYTECODE),--compile-bytecode)
test: sync anchor
	$(UV) run --no-sync ruff check packages tests benchmarks examples docs
	$(UV) run --no-sync ruff format --check packages tests benchmarks examples docs
	$(UV) run --no-sync mypy -p mlx_audio.train -p mlx_audio.data -p mlx_audio.loggers -p mlx_audio.cli
	$(UV) run --no-sync python docs/site.py build --quiet
	$(UV) run --no-sync python -m compileall -q packages tests
	$(UV) run --no-sync python tests/mlx_jit_header.py
	$(RUN_ENV) $(UV) run --no-sync python -m pytest $(PYTEST_ARGS)

# The docs site (mkdocs-material + mkdocstrings), built with --strict into site/.
docs: sync
	$(UV) run --no-sync python docs/site.py build

uv:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || { \
		echo "installing uv with pip"; \
		$(PYTHON) -m pip install --quiet uv 2>/dev/null || \
		$(PYTHON) -m pip install --quiet --user --break-system-packages uv; }

# Debian packages: OpenBLAS (Linux CPU speed) and espeak-ng (test audio). Skipped without apt.
system-deps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(uname)" = Linux ]; then \
		missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
		if [ -n "$$missing" ]; then \
			SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
			echo "apt-get install$$missing"; \
			$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		fi; \
	fi

sync: uv system-deps
	$(UV) sync --all-packages --locked --group demo --group docs $(SYNC_FLAGS)

build: uv
	rm -rf dist && $(UV) build --all-packages --out-dir dist

# torch, torchdata, mlx-data, lightning, transformers and lhotse for anchor comparisons and parity tests; never a
# dependency of our packages. pip takes the torch 2.13.0 CPU build that lies on this disk.
# Then the differential suites' golden files (tests/*/golden/*.json, committed: the suites also run
# without this venv) are recorded again where stale: missing, or their sources or the venv's
# reference versions changed (tests/golden.py; with CI set, a stale committed one is an error).
anchor: $(ANCHOR)/.done
	$(ANCHOR)/bin/python tests/golden.py --if-stale
$(ANCHOR)/.done: uv.lock Makefile
	rm -rf $(ANCHOR)
	$(PYTHON) -m venv $(ANCHOR)
	$(UV) export --all-packages --no-hashes --no-emit-workspace --no-dev --format requirements-txt > $(ANCHOR)/constraints.txt
	$(ANCHOR)/bin/pip install --quiet --upgrade pip
	$(ANCHOR)/bin/pip install --quiet -c $(ANCHOR)/constraints.txt torch==2.13.0 mlx-data==0.1.0 lightning transformers torchdata lhotse==1.33.0 \
		-e 'packages/mlx-audio-data[audio,cpu]' -e packages/mlx-audio-loggers -e packages/mlx-audio-train \
		-e 'packages/mlx-audio-models[all]' -e packages/mlx-audio-stack
	touch $@

bench: sync anchor
	$(RUN_ENV) $(ANCHOR)/bin/python benchmarks/dataloader.py
	$(RUN_ENV) $(ANCHOR)/bin/python benchmarks/trainer_overhead.py
	$(RUN_ENV) $(ANCHOR)/bin/python benchmarks/audio_files.py
	$(RUN_ENV) $(ANCHOR)/bin/python benchmarks/augment.py

lint: sync
	$(UV) run --no-sync ruff check packages tests benchmarks examples docs
	$(UV) run --no-sync ruff format --check packages tests benchmarks examples docs
	$(UV) run --no-sync mypy -p mlx_audio.train -p mlx_audio.data -p mlx_audio.loggers -p mlx_audio.cli

clean:
	rm -rf dist site build .pytest_cache .ruff_cache $(ANCHOR)
