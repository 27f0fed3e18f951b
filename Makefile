# After cloning, two commands: `make demo` and `make test` (see README.md).
# Both create .venv and find or build lnd/btcd first (cached in ~/.cache/l2custody/bin).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test unit check lint typecheck daemons venv

## demo: a 2-of-3 multisig funds an lnd channel, a payment, a close back into the multisig (regtest), then everything stopped
demo: daemons
	$(PY) -m regtest.demo

## test: every test (unit + integration on real daemons); pytest's "no tests" (exit 5) fails too
test: daemons
	$(PY) -m pytest tests/

## check: lint (ruff: rules and format), type check (mypy), then the unit tests
check: lint typecheck unit

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: venv
	$(PY) -m mypy

## unit: only the unit tests (no daemons)
unit: venv
	$(PY) -m pytest tests/ -m "not integration"

## daemons: find or build lnd and btcd (minutes the first time, then cached)
daemons: venv
	$(PY) -m regtest build

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "l2custody needs Python 3.11 or newer: run make PYTHON=python3.11 ..." >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)
