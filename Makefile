# Two entry points for a newcomer: `make dev` runs the service, `make test` runs the suite.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

$(BIN)/syncbus: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: dev test lint bench
dev: $(BIN)/syncbus
	$(BIN)/syncbus dev

test: $(BIN)/syncbus
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(BIN)/syncbus
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(BIN)/syncbus
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/dictionary_push.py
