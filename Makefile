# Syncdesk. Two commands for a newcomer: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell scripts/find-python)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-check test lint typecheck browser clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { scripts/find-python; exit 1; }
	@echo "Using $(PYTHON) ($$($(PYTHON) --version))"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip > $(VENV)/pip.log 2>&1 || { grep -v 'is ignored' $(VENV)/pip.log; exit 1; }
	$(PY) -m pip install -q -e '.[dev]' > $(VENV)/pip.log 2>&1 || { grep -v 'is ignored' $(VENV)/pip.log; exit 1; }
	touch $(STAMP)

venv: $(STAMP)

# Debian's chromium for the browser tests (Playwright cannot download its own here).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian chromium for the browser tests"; \
	    (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)); \
	  else echo "chromium is missing: browser tests will be skipped (apt-get install chromium)"; fi; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check --no-cache .
	$(VENV)/bin/ruff format --check --no-cache .

typecheck: export SECRET_KEY ?= make-test-only-secret-key-not-for-production
typecheck: $(STAMP)
	$(VENV)/bin/mypy integrations/engine integrations/transports

test: export SECRET_KEY ?= make-test-only-secret-key-not-for-production
test: $(STAMP) browser lint typecheck
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py check
	$(PY) -m pytest $(PYTEST_ARGS)

demo: export DEBUG ?= 1
demo: $(STAMP)
	$(PY) manage.py demo

demo-check: export DEBUG ?= 1
demo-check: $(STAMP)
	$(PY) manage.py demo --check

clean:
	rm -rf $(VENV) var
