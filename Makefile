# Two commands on a fresh clone: `make run` (dev mode with embedded PostgreSQL and Redis) and
# `make test`. Both create .venv first and install the project into it (editable, with the test
# extra); the install re-runs only when pyproject.toml or setup.cfg changed since the last one.

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv run test

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

test: venv
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)
