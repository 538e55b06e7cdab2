# `make demo` and `make test` need only python3 and make; the other targets run the README's
# Prefect route (server, deploy, worker) with the same environment as `source env.sh`.
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
CLI := .venv/bin/prefect-mlops
POOL := default

# The commands that run the project (not the tests): state in the checkout, as env.sh sets it.
RUN_TARGETS := demo demo-quick server server-stop deploy worker mlflow-ui
MLOPS_HOME ?= .mlops
$(RUN_TARGETS): export MLOPS_HOME := $(abspath $(MLOPS_HOME))
$(RUN_TARGETS): export PREFECT_HOME ?= $(abspath $(MLOPS_HOME))/prefect

.PHONY: help setup demo test test-unit test-all lint mutation bench clean $(RUN_TARGETS)

help:
	@echo "make demo   set up .venv from uv.lock and run the closed loop (drift -> retrain -> canary -> serve, ~3-4 min)"
	@echo "make demo-quick  the training-only demo (train, register, print where to look)"
	@echo "make test   set up the same and run the test suite"
	@echo "make test-unit  the fast unit tests only (tests/unit, under a minute)"
	@echo "make lint   ruff check, ruff format --check, mypy"
	@echo "make mutation  mutation testing of the decision code (mutmut); kill rate per module"
	@echo "make bench  run the benchmarks in bench/ (writes bench/README.md figures)"
	@echo "make server       start a local Prefect server on 127.0.0.1:4200 (state in .mlops/prefect)"
	@echo "make server-stop  stop it"
	@echo "make deploy       create the '$(POOL)' process work pool if missing, deploy prefect.yaml"
	@echo "make worker       start a worker on that pool (needs a server: make server)"
	@echo "make mlflow-ui    the MLflow UI of .mlops on http://127.0.0.1:5000"

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

$(VENV): uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	@touch $(VENV)

setup: $(VENV)

# The closed loop on a local Prefect server, state in $(MLOPS_HOME)/loop-demo (docs/closed-loop.md,
# "The demo"); DEMO_ARGS=--keep-running leaves it all running until Ctrl-C.
demo: $(VENV)
	$(CLI) demo $(DEMO_ARGS)

# `prefect-mlops demo --quick` exits 4 when nothing changed since the last run (same data and
# config: nothing registered); for `make demo-quick` run twice that is a success, not an error.
demo-quick: $(VENV)
	$(CLI) demo --quick || test $$? -eq 4

server: $(VENV)
	$(CLI) server start

server-stop: $(VENV)
	$(CLI) server stop

# Both need a server: `prefect-mlops server url` names it, or fails with one line saying how.
deploy: $(VENV)
	@url="$$($(CLI) server url)" || exit 1; export PREFECT_API_URL="$$url"; \
	.venv/bin/prefect work-pool inspect $(POOL) >/dev/null 2>&1 \
	  || .venv/bin/prefect work-pool create $(POOL) --type process; \
	.venv/bin/prefect deploy --all --no-prompt && \
	$(CLI) alerts

worker: $(VENV)
	@url="$$($(CLI) server url)" || exit 1; export PREFECT_API_URL="$$url"; \
	exec .venv/bin/prefect worker start --pool $(POOL) --type process

mlflow-ui: $(VENV)
	.venv/bin/mlflow ui --backend-store-uri sqlite:///$(MLOPS_HOME)/mlflow.db --host 127.0.0.1 --port 5000

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

# Mutation testing of the core's decision code ([tool.mutmut] in pyproject.toml), against the
# unit tests; prints the kill rate per module and fails under 90 %. A developer's tool (minutes),
# not part of `make test`. mutmut keeps its state in mutants/ and re-tests only what changed.
mutation: $(VENV)
	.venv/bin/mutmut run --max-children 2 > mutants.log 2>&1 || (tail -20 mutants.log; exit 1)
	.venv/bin/python tools/mutation_report.py --goal 0.9

bench: $(VENV)
	.venv/bin/python bench/run.py

clean:
	rm -rf .venv .tools .mlops mutants mutants.log
