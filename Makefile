# The hub's commands. `make demo` and `make test` bootstrap everything from nothing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
SYS_PACKAGES := unixodbc odbc-postgresql odbc-mariadb libsqliteodbc tdsodbc fonts-wqy-zenhei wrk poppler-utils zbar-tools \
	chromium prometheus
export ODBCSYSINI := $(CURDIR)/etc/odbc
export ODBCINI := $(CURDIR)/etc/odbc/odbc.ini
export AIRFLOW_HOME ?= $(CURDIR)
export PATH := $(CURDIR)/$(BIN):$(PATH)
PYTEST_ARGS ?=

.PHONY: help bootstrap system-packages venv browser-check lock migrate test demo up scaled bench lint clean

help:
	@echo "make demo   - set everything up and run the hub's main job end to end"
	@echo "make test   - set everything up and run the test suite"
	@echo "make up     - Airflow standalone + the API + the sandboxes (long-running)"
	@echo "make scaled - the scaled mode as processes: CeleryExecutor, two workers, PostgreSQL, Redis (long-running)"
	@echo "make bench  - full-size benchmarks"
	@echo "make lint   - ruff, import contracts (lint-imports) and mypy"

# Debian packages the hub needs: unixODBC with the open ODBC drivers, a CJK TrueType font, wrk, and for the
# tests poppler and zbar (a licence PDF's QR code read back) and Chromium (the pages in a real browser).
# apt runs without our ODBCSYSINI: the drivers' postinst scripts register themselves with
# odbcinst, which would otherwise rewrite the repository's etc/odbc/odbcinst.ini.
system-packages:
	@missing=""; for p in $(SYS_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO env -u ODBCSYSINI -u ODBCINI apt-get update -qq && \
	  $$SUDO env -u ODBCSYSINI -u ODBCINI DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(BIN)/uv: $(BIN)/python
	$(BIN)/pip install -q "uv==$(UV_VERSION)"

# Byte-code is compiled at install: with PYTHONDONTWRITEBYTECODE set (as in many CI images) every
# Airflow task process would otherwise recompile pandas, pyarrow and Great Expectations on import.
$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip sync --python $(BIN)/python -q --compile-bytecode requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --python $(BIN)/python -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

# Re-resolve the lock file from pyproject.toml (ours: Airflow's constraints files cannot be fetched here).
lock: $(BIN)/uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -q -o requirements.lock

bootstrap: system-packages venv migrate browser-check

# Playwright (pinned in pyproject.toml to the release built for Debian's Chromium version) must drive
# Debian's Chromium: its own browser download cannot run here and is never called.
browser-check: system-packages venv
	$(BIN)/python tests/recognition/browser/smoke.py

migrate: venv
	$(BIN)/hub migrate

test: bootstrap
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: bootstrap
	$(BIN)/hub demo

up: bootstrap
	$(BIN)/hub up

# CeleryExecutor with two workers, PostgreSQL and Redis (this machine's, unless the environment names others)
scaled: bootstrap
	$(BIN)/hub up --scaled

bench: bootstrap
	$(BIN)/python -m bench

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy hub identifiers connectors mappings identity validation e_license_store cases recognition pipeline rigs sandbox dags

clean:
	rm -rf var/ logs/ airflow.db
