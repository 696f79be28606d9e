# ragapp: `make run` starts the whole app, `make test` runs every test.
# Both install what they need into .venv first; nothing else is assumed.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test install lint format audit test-services clean

run: $(RUN_STAMP)
	$(BIN)/python manage.py serve

test: $(TEST_STAMP) test-services
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

install: $(RUN_STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ragapp needs Python 3.11 or newer; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(RUN_STAMP)

# Services the test suite needs beyond the embedded ones: a real Redis on
# 127.0.0.1:6379 for the real Celery worker, and Debian's chromium at
# /usr/bin/chromium for the browser tests (Playwright never downloads one).
test-services:
	scripts/ensure-redis
	scripts/ensure-chromium

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(TEST_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Needs access to the vulnerability databases pip-audit queries (PyPI, OSV).
audit: $(RUN_STAMP)
	$(BIN)/pip install --quiet -e '.[audit]'
	$(BIN)/pip-audit --skip-editable

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
