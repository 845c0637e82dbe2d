# Two commands a new user needs: `make backtest` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup backtest sweep test lint typecheck pytest bench bench-quick clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

backtest: setup
	$(BIN)/python scripts/run_batch.py batches/demo.yaml --workers 2

sweep: setup
	$(BIN)/python scripts/backtest.py --synthetic 42 --symbol KRW-BTC --periods 8760 --freq 1h \
		--strategy SMA_Crossover --grid fast=5:50:5 --grid slow=10:200:5 --rank sharpe --config filters=none \
		--report reports/sweep/report.md

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

test: lint lint-workflows typecheck pytest

bench: setup
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/performance.py --scalability --out reports/bench

bench-quick: setup
	$(BIN)/python benchmarks/performance.py --quick --out reports/bench-quick --json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache reports

include workflow-lint.mk
