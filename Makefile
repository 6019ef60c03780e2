# One command each: `make run` (service on embedded servers) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: venv run demo test lint bench-em

$(BIN)/crowd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/crowd

venv: $(BIN)/crowd

run: venv
	$(BIN)/crowd serve

lint: venv
	$(BIN)/ruff check crowd workers tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest
