# Two commands work on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install the pinned versions from constraints.txt.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mtrl-installed
EXTRAS ?= sb3,jax,metaworld,traffic,mbtl,ray,dev,docs
PYTEST_ARGS ?=
# Test processes (pytest-xdist): the suite is CPU-bound and single-threaded per test, so two
# workers on a 2-core machine roughly halve its wall time. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

.PHONY: demo test test-slow lint docs clean-runs

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mtrl demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check mtrl_bench envs agents baselines benchmarks experiments tests

# The documentation site (MkDocs + Material + mkdocstrings) into site/; --strict fails on any
# warning (broken link, missing page, unresolved API object).
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

clean-runs:
	rm -rf runs
