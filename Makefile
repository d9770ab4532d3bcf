# qweb: `make run` sets everything up and serves http://127.0.0.1:8000;
# `make test` sets everything up and runs the whole test suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-embedded venv install lint format check-deploy services chromium ssh-tools clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "qweb needs Python 3.11 ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,inference]'
	touch $@

venv install: $(VENV)/.installed

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py make_tiny_model --demo
	@echo "qweb is starting on http://$(HOST):$(PORT)/"
	$(BIN)/daphne -b $(HOST) -p $(PORT) qweb.asgi:application

# Starts PostgreSQL and Redis when this machine has them but they are down.
services:
	@bash .ci/services.sh

# Debian's Chromium for the browser tests (Playwright drives it; it downloads no browser).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Chromium first: sudo apt-get install -y chromium"; exit 1; fi; }

# OpenSSH (server and client) for the ssh clone tests, which start their own sshd on
# loopback; installed as root when missing, without starting the system's ssh service.
ssh-tools:
	@bash .ci/ssh-tools.sh

# Runs on the local PostgreSQL and Redis (started when down); `make test-embedded` uses
# SQLite and the in-memory channel layer instead.
test: export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/qweb
test: export REDIS_URL ?= redis://127.0.0.1:6379/0
test: services test-embedded

test-embedded: install chromium ssh-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run >/dev/null || { echo "Missing migrations: run manage.py makemigrations"; exit 1; }
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check-deploy: install
	QWEB_SECRET_KEY=$$($(BIN)/python -c 'import secrets;print(secrets.token_urlsafe(64))') \
	QWEB_ALLOWED_HOSTS=qweb.example.com QWEB_HTTPS=true QWEB_DEBUG=false \
	$(BIN)/python manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
