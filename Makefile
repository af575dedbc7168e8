# Forewarn — `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(PYTHON) -m uv
STAMP := $(VENV)/.synced

.PHONY: help setup demo test lint format bench mlflow-ui serve browser java postgres messages clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

# --compile-bytecode: the libraries' .pyc files are written once here, not compiled again by
# every command (with PYTHONDONTWRITEBYTECODE set, Python never writes them itself).
$(STAMP): pyproject.toml uv.lock
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode
	@touch $(STAMP)

setup: $(STAMP) java ## create .venv from uv.lock (installs uv with pip when missing), and Java for MPXJ

demo: setup ## simulate a portfolio and run every job on it; prints where each output is
	$(BIN)/forewarn demo

browser: ## install Debian's chromium and CJK fonts (fonts-noto-cjk) for the page tests, when missing
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	    || echo "$$missing could not be installed: browser tests will be skipped"; \
	  else echo "no$$missing and no root apt-get: browser tests will be skipped"; fi; fi

# PostgreSQL (team MLflow store) for tests/scale; Debian 12's postgresql is 15. Installs
# only when missing and never fails the build.
postgres: ## install Debian's postgresql for the team-store tests, when missing
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	    || echo "postgresql could not be installed: PostgreSQL tests will be skipped"; \
	  else echo "no PostgreSQL and no root apt-get: PostgreSQL tests will be skipped"; fi; }

java: ## install Debian's Java runtime (17) for MPXJ (forewarn import) and Spark, when missing
	@command -v java >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null) \
	    || echo "Java could not be installed: forewarn import and its tests will be skipped"; \
	  else echo "no java and no root apt-get: forewarn import and its tests will be skipped"; fi; }

test: setup browser java postgres ## run the test suite (unit, contract, model, server, notebooks, browser)
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

messages: setup ## extract the messages (babel.cfg) into serving/locale and merge them into zh_CN's .po
	$(BIN)/pybabel extract -F babel.cfg --project=Forewarn --no-location --sort-output -o serving/locale/forewarn.pot .
	$(BIN)/pybabel update -D forewarn -i serving/locale/forewarn.pot -d serving/locale
	@echo "translate the new or fuzzy entries of serving/locale/zh_CN/LC_MESSAGES/forewarn.po (tests/serving/test_i18n.py checks)"

mlflow-ui: setup ## browse runs and the registry in models/
	$(BIN)/mlflow ui --backend-store-uri sqlite:///models/mlflow.db --default-artifact-root models/artifacts

serve: setup ## serve the champion models on 127.0.0.1:3000
	$(BIN)/forewarn serve

clean: ## remove outputs and caches (keeps .venv and models/)
	rm -rf forewarn-out .pytest_cache .mypy_cache .ruff_cache .hypothesis
