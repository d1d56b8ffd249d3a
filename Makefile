# One entry point for people, the README and CI. Every target creates .venv by itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help run test test-fast lint format docs bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU build of torch first (it lies on local disk), so the project's range needs nothing more
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## the main job on the shipped demo data: ingest, features, sweep, select, test
	$(BIN)/viewcast run

# two pytest workers, one thread each: two workers of two threads on two cores spin-wait against
# each other (the suite took 312 s that way, 210 s this way)
TEST_ENV := MLFLOW_DISABLE_TELEMETRY=true OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
PYTEST := $(TEST_ENV) $(BIN)/pytest -q -n 2 --dist worksteal

test: $(STAMP)  ## every test on both cores, then the layer contracts and ruff (~4 minutes)
	$(PYTEST)
	@$(MAKE) --no-print-directory lint

test-fast: $(STAMP)  ## the tests not marked slow (under a minute): the inner loop
	$(PYTEST) -m "not slow"

lint: $(STAMP)  ## import-linter's layer contracts, ruff check and format check
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)  ## ruff format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

docs: $(STAMP)  ## regenerate docs/cli.md from the Typer app (a test fails when it is stale)
	$(BIN)/typer pipeline.cli utils docs --name viewcast --output docs/cli.md

bench: $(STAMP)  ## benchmarks against peers (installs the bench extra; ~30 minutes, ~15 GB peak)
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_accuracy.py
	$(BIN)/python bench/bench_forecast.py

clean:  ## remove the venv and generated data (data/raw stays)
	rm -rf $(VENV) data/store data/features data/forecasts mlruns/mlflow.db mlruns/artifacts reports bench/out .viewcast.lock
