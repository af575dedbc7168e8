# Forewarn — `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(PYTHON) -m uv
STAMP := $(VENV)/.synced

.PHONY: help setup demo test lint format bench mlflow-ui serve browser postgres java clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml uv.lock
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $(STAMP)

setup: $(STAMP) ## create .venv from uv.lock (installs uv with pip when missing)

demo: setup ## simulate a portfolio and run every job on it; prints where each output is
	$(BIN)/forewarn demo

browser: ## install Debian's chromium for the page-rendering tests, when missing
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "chromium could not be installed: browser tests will be skipped"; \
	  else echo "no chromium and no root apt-get: browser tests will be skipped"; fi; }

# PostgreSQL (team MLflow store) and Java 17 (Spark engine) for tests/scale; Debian 12's
# postgresql is 15. Both targets install only when missing and never fail the build.
postgres: ## install Debian's postgresql for the team-store tests, when missing
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	    || echo "postgresql could not be installed: PostgreSQL tests will be skipped"; \
	  else echo "no PostgreSQL and no root apt-get: PostgreSQL tests will be skipped"; fi; }

java: ## install a Java runtime (17 on Debian 12) for the Spark engine, when missing
	@command -v java >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null) \
	    || echo "java could not be installed: Spark tests will be skipped"; \
	  else echo "no java and no root apt-get: Spark tests will be skipped"; fi; }

test: setup browser postgres java ## run the test suite (unit, contract, model, server, notebooks, browser)
	$(BIN)/pytest -n 2 --dist loadfile

lint: setup ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --check --no-cache .
	$(BIN)/mypy

format: setup ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup ## run every benchmark in bench/ (figures beside baselines; not tests)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

mlflow-ui: setup ## browse runs and the registry in models/
	$(BIN)/mlflow ui --backend-store-uri sqlite:///models/mlflow.db --default-artifact-root models/artifacts

serve: setup ## serve the champion models on 127.0.0.1:3000
	$(BIN)/forewarn serve

clean: ## remove outputs and caches (keeps .venv and models/)
	rm -rf forewarn-out .pytest_cache .mypy_cache .ruff_cache .hypothesis
