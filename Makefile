# Two commands on a fresh clone: `make run` (dev mode with embedded PostgreSQL and Redis) and
# `make test`. Both create .venv first and install the project into it (editable, with the test
# extra); the install re-runs only when pyproject.toml or setup.cfg changed since the last one.

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# The browser tests drive Debian's Chromium (never a browser Playwright downloads).
CHROMIUM ?= /usr/bin/chromium
BROWSER_TESTS := tests/test_widget_browser.py tests/test_widget_first_impression_browser.py \
                 tests/test_widget_tickets_browser.py tests/test_console_browser.py tests/test_browser_chat.py \
                 tests/test_bookings_browser.py tests/test_console_signin_browser.py \
                 tests/test_attachments_browser.py tests/test_widget_ticket_files_browser.py

.PHONY: venv run test lint browser node screenshots

venv: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# The venv is an order-only prerequisite: creating it must not by itself force a reinstall,
# but a fresh venv has no stamp, so it gets one.
$(STAMP): pyproject.toml setup.cfg | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --disable-pip-version-check --quiet --editable '.[test]'
	touch $@

run: venv
	$(VENV)/bin/support-service dev

test: venv browser node lint
	CHROMIUM_PATH=$(CHROMIUM) $(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

# ruff's lint rules and formatting over the tree, and mypy over app/ (settings in pyproject.toml).
# `ruff format .` fixes what `--check` reports.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Installs Chromium from Debian's packages when it is missing (as root, or through sudo).
browser:
	@test -x $(CHROMIUM) || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@test -x $(CHROMIUM) || { echo "$(CHROMIUM) is missing: apt-get install chromium"; exit 1; }

# The official Node socket.io-client (pinned in tests/node/package-lock.json) for the websocket
# fast path's tests; installed once with npm.
node:
	@test -d tests/node/node_modules/socket.io-client || \
	  (cd tests/node && npm ci --prefer-offline --no-audit --no-fund)

# Retakes the widget and console screenshots in docs/screenshots (the browser tests take them).
screenshots: venv browser
	CHROMIUM_PATH=$(CHROMIUM) SCREENSHOT_DIR=docs/screenshots $(VENV)/bin/python -m pytest -q $(BROWSER_TESTS)
