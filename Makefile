# Two commands do all set-up on a fresh machine:
#   make run    the shop on http://127.0.0.1:8000/ (SQLite, demo data; the local Stripe emulator when no keys)
#   make test   the whole test suite (DATABASE_URL=postgres://... make test runs it on PostgreSQL)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint e2e bench smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $(VENV)/.runtime $@

run: $(VENV)/.runtime
	$(BIN)/python -m core.devserver

test: $(VENV)/.dev
	$(BIN)/pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache
