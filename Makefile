# One command runs the main job, one runs the tests; each installs what it
# needs into a virtual environment first (see README.md). Every install goes
# through constraints.txt (the versions CI tests), never a bare `pip install`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.keras-mk-installed
PIP_INSTALL = $(BIN)/python -m pip install --progress-bar off
MIN_VENV ?= .venv-min
MIN_STAMP := $(MIN_VENV)/.keras-mk-installed
MIN_BACKEND ?= jax
MIN_TESTS ?= tests/test_keras_private.py tests/layers tests/conversion \
	tests/training tests/baselines tests/diagnostics tests/distribution
BACKENDS ?= tensorflow jax torch
PYTEST_ARGS ?=
# The demo runs on JAX: ~3x faster than TensorFlow on its tiny models, so
# its guarded search fits in 10 minutes on 2 cores (docs/experiments.md).
DEMO_BACKEND ?= jax
DEMO_ARGS ?=

.PHONY: install demo test test-backends $(addprefix test-backend-,$(BACKENDS)) \
	test-min docs notebook lint format \
	wheel-check

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.main --backend $(DEMO_BACKEND) $(DEMO_ARGS)

# THE test command (CI's `.ci/run` calls exactly this): lint, the docs site,
# then the whole suite once per backend (docstring and README examples and
# the notebook included) and the lowest supported versions on one backend.
# The four suites are independent processes: they run side by side, JOBS at
# a time (one per core: three at a time on 2 cores took 36 min in all, two
# at a time 32 min, on this project's VM with `.venv` installed), longest
# first. The two venvs are installed one after the other, never at once
# (concurrent pip installs share a cache and race: pip issues 12361, 8168).
# `make -O` keeps each suite's output in one piece, printed when that suite
# ends. `-k` runs every suite even if one fails; `make test` fails if any
# did.
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
SUITES := $(addprefix test-backend-,$(filter jax,$(BACKENDS)) \
	$(filter-out jax,$(BACKENDS))) test-min

test: lint docs
	@$(MAKE) --no-print-directory -k -j$(JOBS) --output-sync=target \
	  $(SUITES)

# The whole suite once per backend, each in its own process (one after the
# other here; `make test` runs them side by side).
test-backends: $(addprefix test-backend-,$(BACKENDS))

# One backend's suite: `make test-backend-jax`. No pytest cache: the suites
# run at once and would race on `.pytest_cache`.
$(addprefix test-backend-,$(BACKENDS)): test-backend-%: $(STAMP)
	@echo "=== KERAS_BACKEND=$* ==="
	KERAS_BACKEND=$* $(BIN)/python -m pytest -p no:cacheprovider \
	  $(PYTEST_ARGS)

# The lowest supported versions (constraints-min.txt, the lower bounds of
# pyproject.toml) in their own venv, on one backend. Its job is to prove the
# lower bounds, so it runs the tests of the API they are about (MIN_TESTS:
# the private Keras API, the layers, conversion, saving and LiteRT export,
# KerasHub models, ADV-MK, the baselines, `keras.distribution`), not the
# whole suite: the docs, examples and benchmark tests exercise the same
# calls again (and the examples' extra has no lower bounds), and the slow
# model-coverage tests check models, not versions.
$(MIN_STAMP): pyproject.toml constraints-min.txt
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MIN_VENV)/bin/python -m pip install --progress-bar off \
	  -c constraints-min.txt -e ".[$(MIN_BACKEND),hub,litert,test]"
	touch $(MIN_STAMP)

test-min: $(MIN_STAMP)
	@echo "=== lowest supported versions, KERAS_BACKEND=$(MIN_BACKEND) ==="
	@$(MIN_VENV)/bin/python -m pip list 2>/dev/null | \
	  grep -E -i "^(keras|keras-hub|jax|jaxlib|tensorflow|numpy|ai-edge-litert) "
	KERAS_BACKEND=$(MIN_BACKEND) $(MIN_VENV)/bin/python -m pytest \
	  -m "not slow" $(MIN_TESTS) $(PYTEST_ARGS)

# The docs site (mkdocs-material + mkdocstrings): fails on any warning.
# The performance page's tables must match the results files they are
# rendered from (`docs/build_performance.py`, which measures nothing).
docs: $(STAMP)
	$(BIN)/python docs/build_performance.py --check
	KERAS_BACKEND=jax NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict \
	  --site-dir site

# The quick-start notebook alone (it also runs in `make test`).
notebook: $(STAMP)
	KERAS_BACKEND=jax $(BIN)/python -m pytest tests/docs/test_notebook.py

# Builds the wheel, installs it in fresh venvs with only [jax] and only
# [torch] and checks that it works there without TensorFlow.
wheel-check: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --wheel --outdir dist
	$(PYTHON) scripts/wheel_check.py dist

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
