# Every target bootstraps its own virtual environment from pyproject.toml: a fresh machine needs only
# python3 and make. The venv is rebuilt when pyproject.toml changes (the stamp file is older).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# benchmarks run in their own environment with the peer libraries (see pyproject's `bench` extra)
BVENV  := .venv-bench
BSTAMP := $(BVENV)/.installed

.PHONY: demo demo-django test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	@touch $(STAMP)

$(BSTAMP): pyproject.toml
	@test -x $(BVENV)/bin/python || $(PYTHON) -m venv $(BVENV)
	$(BVENV)/bin/python -m pip install -q --upgrade pip
	$(BVENV)/bin/python -m pip install -q -e '.[all,bench]'
	@touch $(BSTAMP)

demo: $(STAMP)
	$(BIN)/perfkit demo

demo-django: $(STAMP)
	$(BIN)/perfkit demo --django

# the whole suite. Under CI=true (as .ci/run sets) it also measures coverage of src/perfkit and fails below
# pyproject's [tool.coverage.report] fail_under; on a developer's machine without Redis/PostgreSQL their
# tests skip, so the floor is not applied there (`make test CI=true` applies it)
COVERAGE := $(if $(filter 1 true yes TRUE True YES,$(CI)),--cov --cov-report=term:skip-covered,)
test: $(STAMP)
	$(BIN)/python -m pytest $(COVERAGE) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(BSTAMP)
	$(BVENV)/bin/python benchmarks/cache.py
	$(BVENV)/bin/python benchmarks/orm.py
	$(BVENV)/bin/python benchmarks/web.py
	$(BVENV)/bin/python benchmarks/jobs.py
	$(BVENV)/bin/python benchmarks/loadgen.py

clean:
	rm -rf $(VENV) $(BVENV) .pytest_cache .mypy_cache .ruff_cache
