# The README's commands. Each one sets up what it needs on a fresh clone.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SERVE_ARGS ?= --demo
SOAK_ARGS ?=
PYTEST_ARGS ?=
# Test processes (pytest-xdist). Most integration tests wait on servers, so 3 beat 2 on 2 cores.
TEST_WORKERS ?= 3
# The dashboard (web/) is built into the package; rebuilt only when its sources change.
NPM ?= npm
WEB_DEPS := web/node_modules/.installed-stamp
WEB_DIST := src/pharos/server/web/dist/index.html
WEB_SRC := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/vite.config.ts \
	web/tsconfig.json web/package.json

.PHONY: install serve test bench soak lint fmt clean web

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,dev]'
	touch $(STAMP)

install: $(STAMP)

$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && $(NPM) ci --no-audit --no-fund --loglevel=error
	touch $@

$(WEB_DIST): $(WEB_DEPS) $(WEB_SRC)
	cd web && $(NPM) run --silent build -- --logLevel warn
	touch $@

## Build the dashboard (web/ -> src/pharos/server/web/dist)
web: $(WEB_DIST)

## Run Pharos on http://127.0.0.1:4318 with a SQLite file (and demo traffic; SERVE_ARGS= for none)
serve: $(STAMP) $(WEB_DIST)
	$(BIN)/pharos db upgrade
	$(BIN)/pharos serve $(SERVE_ARGS)

## Run the whole test suite (PostgreSQL/Redis tests run when PHAROS_TEST_*_URL are set)
test: $(STAMP) $(WEB_DIST)
	cd web && $(NPM) run --silent test
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

## Run the benchmarks (not part of the test suite)
bench: $(STAMP) $(WEB_DIST)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/alerts.py
	$(BIN)/python bench/waterfall.py
	$(BIN)/python bench/sdk_overhead.py
	$(BIN)/python bench/logs.py
	$(BIN)/python bench/scale.py

## 10 minutes of mixed load (ingest + dashboard + alerts), RSS and latency every 10 s (SOAK_ARGS=--minutes 2)
soak: $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

lint: $(STAMP) $(WEB_DEPS)
	cd web && $(NPM) run --silent typecheck && $(NPM) run --silent lint
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix src tests bench examples
	$(BIN)/ruff format src tests bench examples

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
