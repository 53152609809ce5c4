# Every target creates .venv and installs the project on first use, so a fresh
# clone needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast test-slow lint bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/roomkeeper serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Lint, types, the import contract, every fast test, and 100% branch coverage of core.
test: lint
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest -q
	$(BIN)/coverage report --include='src/roomkeeper/core/*' --fail-under=100 --show-missing --skip-covered

# Cluster, soak and other long tests. Exit status 5 means none were collected.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

clean:
	rm -rf $(VENV) .roomkeeper .pytest_cache .mypy_cache .ruff_cache .coverage
