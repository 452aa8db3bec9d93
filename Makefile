PYTHON ?= python3
# Two workers: the suite is mostly waiting on database servers (override: PYTEST_ARGS=...).
PYTEST_ARGS ?= -n 2
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup services demo test check lint types imports bench bench-http dist clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# The distribution was called "dataflow" before; its record would remove bin/nexus later.
	@$(BIN)/python -m pip uninstall -q -y --disable-pip-version-check dataflow 2>/dev/null || true
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[all,dev]'
	@touch $(STAMP)

services:  # outside CI, a server that cannot be started only skips its tests
	@scripts/services || test "$$CI" != true

demo: setup
	@dir=$$(mktemp -d) && cd $$dir && env -u DATABASE_URL $(CURDIR)/$(BIN)/python $(CURDIR)/examples/quickstart.py

test: setup services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples docs

types: setup
	$(BIN)/mypy

imports: setup
	$(BIN)/lint-imports

check: lint types imports test

bench: setup
	$(BIN)/python bench/crud.py
	$(BIN)/python bench/bulk.py
	$(BIN)/python bench/transactions.py
	$(BIN)/python bench/query.py
	$(BIN)/python bench/regex.py
	$(BIN)/python bench/features.py

bench-http: setup
	$(BIN)/python bench/http_load.py

dist: setup  # the wheel and sdist of the dataflow-workflows distribution, in dist/
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
