# Proof — every target creates .venv from the lock file when needed and is safe to rerun.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench ui clean help calibrate

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): requirements/dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)  ## simulate demo data if missing, run the nightly flow, print where the report is
	$(BIN)/proof demo

test: $(STAMP)  ## lint, type-check and run the whole test suite
	$(BIN)/ruff check analysis flows tests
	$(BIN)/ruff format --check analysis flows tests
	$(BIN)/mypy analysis
	$(BIN)/python -m pytest

lint: $(STAMP)  ## ruff and mypy only
	$(BIN)/ruff check analysis flows tests
	$(BIN)/ruff format --check analysis flows tests
	$(BIN)/mypy analysis

clean:  ## remove the virtual environment, demo data and published reports
	rm -rf $(VENV) data reports/*/ reports/index.html reports/assets

calibrate: $(STAMP)  ## simulate A/A and A/B experiments through the engine; check FPR, coverage, peeking
	$(BIN)/python scripts/calibrate.py
