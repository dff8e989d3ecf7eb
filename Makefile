# One command runs the main job, one runs the tests; each installs what it
# needs into a virtual environment first (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.keras-mk-installed
BACKENDS ?= tensorflow jax torch
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: install demo test lint format

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.main $(DEMO_ARGS)

# The whole suite once per backend, each in its own process; fails if any
# backend fails.
test: $(STAMP) lint
	@status=0; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b ==="; \
	  KERAS_BACKEND=$$b $(BIN)/python -m pytest $(PYTEST_ARGS) || status=1; \
	done; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
