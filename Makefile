# CTPN developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
# Extra arguments for pytest: make test ARGS="-k decision -x"
ARGS ?=

.PHONY: help venv run test lint fmt provision bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv: ## Create .venv and install the project with its dev extras (again only when pyproject.toml changed)
	@bash scripts/venv.sh

run: ## Run everything on the embedded default (SQLite, local Redis) at http://127.0.0.1:8000/
	@bash scripts/run.sh

test: ## Lint, Django checks and pytest against PostgreSQL and Redis (provisioned if not given)
	@bash scripts/test.sh $(ARGS)

lint: venv ## ruff check, ruff format --check and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: venv ## Fix what ruff can fix and format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

provision: ## Start the test PostgreSQL and Redis, check they answer, stop them
	@bash scripts/test.sh --provision-only

bench: ## Run the benchmarks (about 10 minutes) and write docs/performance.md
	@bash benchmarks/run.sh $(ARGS)

clean: ## Remove caches (keeps .venv and the var/ data)
	rm -rf .pytest_cache .ruff_cache staticfiles
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
