# Two commands do all set-up on a fresh machine:
#   make run    the shop on http://127.0.0.1:8000/ (SQLite, demo data; the local Stripe emulator when no keys)
#   make test   the whole test suite (DATABASE_URL=postgres://... make test runs it on PostgreSQL)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run admin test lint bench bench-queue mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $(VENV)/.runtime $@

# The browser tests drive Debian's Chromium (Playwright with executable_path=/usr/bin/chromium).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(VENV)/.browser: | $(BIN)/python
	@command -v chromium >/dev/null || { echo "Installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
	touch $@

# exec: the launcher is make's own child, so that it stops the shop and the emulator when make is killed.
run: $(VENV)/.runtime
	exec $(BIN)/python -m core.devserver

# A staff account for /admin/ on the local database (`make run`'s): DEBUG on, as make run runs the shop.
admin: $(VENV)/.runtime
	DEBUG=1 $(BIN)/python manage.py migrate --noinput
	DEBUG=1 $(BIN)/python manage.py createsuperuser --skip-checks $(ARGS)

test: $(VENV)/.dev $(VENV)/.browser
	$(BIN)/pytest

# The benchmark (bench/README.md): PostgreSQL at 127.0.0.1:5432, Debian's wrk for the page scenarios and its
# nginx (deploy/nginx.conf in front, for the promotion code flood).
$(VENV)/.wrk: | $(BIN)/python
	@{ command -v wrk && { command -v nginx || test -x /usr/sbin/nginx; }; } >/dev/null || { \
	  echo "Installing Debian's wrk and nginx for the benchmark"; $(SUDO) apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk nginx; }
	touch $@

bench: $(VENV)/.dev $(VENV)/.wrk
	$(BIN)/python -m bench.run $(ARGS)

# The task queue's benchmark (bench/queue.py): webhooks while Stripe and SMTP hang, throughput with 1 and 2
# workers, PostgreSQL connections of 2 app servers and 2 workers. PostgreSQL at 127.0.0.1:5432.
bench-queue: $(VENV)/.dev
	$(BIN)/python -m bench.queue $(ARGS)

# Mutation testing of the money and state rules (README, "Mutation testing"): CPU-heavy, not part of `make test`.
mutation: $(VENV)/.dev
	rm -rf mutants
	HYPOTHESIS_PROFILE=ci $(BIN)/mutmut run --max-children $${MUTATION_JOBS:-2}
	$(BIN)/python tools/mutation_score.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	DJANGO_SETTINGS_MODULE=core.test_settings $(BIN)/python manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache mutants
