# Proof — every target creates .venv from the lock file when needed and is safe to rerun.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV := VIRTUAL_ENV=$(VENV) UV_LINK_MODE=copy $(BIN)/uv pip

.PHONY: demo test lint bench ui serve clean help calibrate java spark

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The lock is complete (tests/test_lock.py proves it), so nothing is resolved: pip installs
# the pinned uv by hash, uv installs the lock by hash with --no-deps, then Proof itself.
# --compile-bytecode: every `proof run` process and Prefect server then imports compiled
# modules (importing prefect, scipy and GX: 15.9 s -> 7.0 s here), which the tests start by dozens.
$(STAMP): requirements/dev.txt requirements/uv.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements/uv.txt
	$(UV) install --quiet --no-deps --require-hashes --compile-bytecode -r requirements/dev.txt
	$(UV) install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The spark source's packages and Java, for the tests, the bench and anyone with a spark
# source; `make demo` does without (pyspark is a 450 MB download). pyspark is a source
# archive (no wheel): built with the setuptools dev.txt installed, not in isolation.
SPARK_STAMP := $(VENV)/.spark
$(SPARK_STAMP): $(STAMP) requirements/spark.txt
	$(UV) install --quiet --no-deps --require-hashes --no-build-isolation --compile-bytecode -r requirements/spark.txt
	@command -v java >/dev/null || $(MAKE) --no-print-directory java
	touch $(SPARK_STAMP)

spark: $(SPARK_STAMP)  ## install the spark source's packages (requirements/spark.txt) and Java 17

# The spark source runs Spark on Java 17 (Debian's). Without root or apt the Spark tests
# skip and say why; everything else works without Java.
java:  ## install Java 17 for the spark source (Debian's openjdk-17-jre-headless; needs root)
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless) \
	  || echo "Java could not be installed here: the spark source and its tests are skipped"

demo: $(STAMP)  ## simulate demo data if missing, run the nightly flow, print where the report is
	$(BIN)/proof demo

test: $(SPARK_STAMP)  ## lint, type-check and run the whole test suite
	$(UV) check
	$(BIN)/ruff check analysis flows tests scripts
	$(BIN)/ruff format --check analysis flows tests scripts
	$(BIN)/mypy analysis flows
	$(BIN)/python -m pytest

lint: $(STAMP)  ## ruff and mypy only
	$(BIN)/ruff check analysis flows tests scripts
	$(BIN)/ruff format --check analysis flows tests scripts
	$(BIN)/mypy analysis flows

bench: $(SPARK_STAMP)  ## time every stage against a polars floor and a pandas baseline (writes docs/performance.md)
	$(BIN)/python scripts/bench.py --write $(BENCH_ARGS)

clean:  ## remove the virtual environment, demo data and published reports
	rm -rf $(VENV) data reports/*/ reports/index.html reports/assets reports/.state reports/.cache

calibrate: $(STAMP)  ## simulate A/A and A/B experiments through the engine; check FPR, coverage, peeking
	$(BIN)/python scripts/calibrate.py

ui: $(STAMP)  ## start a local Prefect server and its UI on http://127.0.0.1:4200 (Ctrl-C stops it)
	$(BIN)/proof server --host 127.0.0.1 --port 4200

serve: $(STAMP)  ## serve the deployments (nightly, analyze-experiment, watch-sources) to that server
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:4200/api} $(BIN)/proof serve

.PHONY: check-report
check-report: $(STAMP)  ## open the demo reports in headless Chromium (errors, figures, verdict, size); screenshots to docs/img
	$(BIN)/python scripts/check_report.py $(CHECK_REPORT_ARGS)
