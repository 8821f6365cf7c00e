# The README's commands. Each one sets up what it needs on a fresh clone.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SERVE_ARGS ?= --demo
PYTEST_ARGS ?=

.PHONY: install serve test bench lint fmt clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,dev]'
	touch $(STAMP)

install: $(STAMP)

## Run Pharos on http://127.0.0.1:4318 with a SQLite file (and demo traffic; SERVE_ARGS= for none)
serve: $(STAMP)
	$(BIN)/pharos db upgrade
	$(BIN)/pharos serve $(SERVE_ARGS)

## Run the whole test suite (PostgreSQL/Redis tests run when PHAROS_TEST_*_URL are set)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Run the benchmarks (not part of the test suite)
bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
