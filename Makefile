# The two README commands: `make demo` and `make test`. Only python3 and make are needed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export GX_ANALYTICS_ENABLED := false
export UV_LINK_MODE := copy

# uv from PATH, else a private copy installed from PyPI into .tools/ (a package, never a binary download).
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv/.synced

.PHONY: help setup demo test test-unit test-all lint bench clean

help:
	@echo "make demo   set up .venv from uv.lock and run the continuous-training demo"
	@echo "make test   set up the same and run the test suite"
	@echo "make test-unit  the fast unit tests only (tests/unit, under a minute)"
	@echo "make lint   ruff check, ruff format --check, mypy"
	@echo "make bench  run the benchmarks in bench/ (writes bench/README.md figures)"

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

$(VENV): uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	@touch $(VENV)

setup: $(VENV)

demo: $(VENV)
	.venv/bin/prefect-mlops demo

test: $(VENV)
	.venv/bin/pytest -q

test-unit: $(VENV)
	.venv/bin/pytest -q -m unit

test-all: $(VENV)
	.venv/bin/pytest -q -m "slow or not slow"

lint: $(VENV)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench: $(VENV)
	.venv/bin/python bench/run.py

clean:
	rm -rf .venv .tools .mlops
