# ModelTrain — one entry point for setting up, running, testing and linting.
#   make run    set everything up, then serve app + API on http://$(HOST):$(PORT)
#   make test   set everything up, then run every test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
TRAIN_VENV := .venv-train

VENV_STAMP := $(VENV)/.deps-stamp
TRAIN_STAMP := $(TRAIN_VENV)/.deps-stamp
FRONTEND_STAMP := frontend/node_modules/.deps-stamp
HAS_FRONTEND := $(wildcard frontend/package.json)

.PHONY: help setup backend-setup frontend-setup frontend-build run test test-backend test-frontend \
	lint lint-backend lint-frontend format bench clean train-env

help:
	@echo "make run    - set up and serve on http://$(HOST):$(PORT) (SQLite by default)"
	@echo "make test   - set up, lint, then every suite: backend (SQLite; PostgreSQL too when"
	@echo "             TEST_DATABASE_URL is set), vue-tsc, Vitest, Playwright e2e"
	@echo "make lint   - ruff check, ruff format --check, mypy; eslint + prettier"
	@echo "make bench  - run the benchmarks in bench/"
	@echo "make train-env - create .venv-train (LLaMA-Factory, SwanLab; several GB; make test does it)"

setup: backend-setup frontend-build

backend-setup: $(VENV_STAMP)

# Rebuilt only when a requirements file changes, so repeated runs are instant.
$(VENV_STAMP): backend/requirements.txt backend/requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r backend/requirements.txt -r backend/requirements-dev.txt
	@touch $@

train-env: $(TRAIN_STAMP)

# The training engine in its own venv: LLaMA-Factory pins transformers/peft/trl.
# Several GB (torch is a CUDA build, which also trains on the CPU); rebuilt only
# when its requirements file changes.
$(TRAIN_STAMP): backend/requirements-train.txt
	@test -x $(TRAIN_VENV)/bin/python || $(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r backend/requirements-train.txt
	@touch $@

ifneq ($(HAS_FRONTEND),)
FRONTEND_SOURCES := $(shell find frontend/src frontend/public -type f 2>/dev/null) \
	frontend/index.html frontend/vite.config.ts frontend/tsconfig.app.json

frontend-setup: $(FRONTEND_STAMP)

# npm ci only when the lock file changes; the build only when a source changes.
$(FRONTEND_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	@touch $@

frontend/dist/index.html: $(FRONTEND_STAMP) $(FRONTEND_SOURCES)
	cd frontend && npm run build

frontend-build: frontend/dist/index.html

test-frontend: frontend-build backend-setup
	cd frontend && npm run typecheck
	cd frontend && npm run test:unit
	cd frontend && npm run test:e2e

lint-frontend: frontend-setup
	cd frontend && npm run lint
else
frontend-setup frontend-build test-frontend lint-frontend:
	@echo "frontend/package.json not present: nothing to do for the SPA"
endif

run: setup
	cd backend && ../$(BIN)/uvicorn main:app --host $(HOST) --port $(PORT) --proxy-headers

test: setup lint test-backend test-frontend

# The engine tests need the training venv (cached: rebuilt only when its requirements change).
test-backend: backend-setup train-env
	@echo "== backend tests on SQLite =="
	$(BIN)/python -m pytest backend/tests $(PYTEST_ARGS)
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== backend tests on PostgreSQL ($$TEST_DATABASE_URL; engines and llm_core use no database;"; \
		echo "   the real-engine API runs repeat on SQLite only: the supervisor's SQL is covered by"; \
		echo "   test_training.py and test_model_runtime.py with stand-in processes) =="; \
		MT_TEST_DB=postgresql $(BIN)/python -m pytest backend/tests \
			--ignore=backend/tests/engines --ignore=backend/tests/llm_core \
			--ignore=backend/tests/api/test_training_engine.py \
			--ignore=backend/tests/api/test_model_loop.py $(PYTEST_ARGS); \
	else \
		echo "TEST_DATABASE_URL not set: PostgreSQL run skipped"; \
	fi

lint: lint-backend lint-frontend

lint-backend: backend-setup
	$(BIN)/ruff check backend bench
	$(BIN)/ruff format --check backend bench
	cd backend && ../$(BIN)/mypy app

format: backend-setup frontend-setup
	$(BIN)/ruff check --fix backend bench
	$(BIN)/ruff format backend bench
	cd frontend && npm run format

bench: backend-setup frontend-setup
	$(BIN)/python bench/login_load.py
	$(BIN)/python bench/llm_core_overhead.py
	$(BIN)/python bench/chat_relay.py
	$(BIN)/python bench/chat_capacity.py
	$(BIN)/python bench/chat_history.py
	$(BIN)/python bench/api_concurrency.py
	$(BIN)/python bench/dataset_validation.py
	$(BIN)/python bench/training_overhead.py
	$(BIN)/python bench/deploy_latency.py
	$(BIN)/python bench/cpu_threads.py
	cd frontend && npm run size

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist .pytest_cache .mypy_cache .ruff_cache
