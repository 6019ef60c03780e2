# One command each: `make run` (`crowd demo`: the service on embedded servers, with a
# simulated crowd answering a batch) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: venv bench-venv run test lint chromium bench-em bench-accuracy bench-api

$(BIN)/crowd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/crowd

venv: $(BIN)/crowd

run: venv
	$(BIN)/crowd demo

lint: venv
	$(BIN)/ruff check crowd workers tests benchmarks
	$(BIN)/mypy

# The browser tests (tests/web/) drive the system's Chromium (Debian packages); install it
# when missing (as root, or through sudo).
CHROMIUM ?= $(or $(CROWD_TEST_CHROMIUM),/usr/bin/chromium)
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

chromium:
	@[ -x $(CHROMIUM) ] || { echo "installing chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $(SUDO) apt-get install -y -qq chromium chromium-driver; }

test: lint chromium
	$(BIN)/pytest

# Benchmarks (not part of the tests): each prints our figure beside its peer's, as a ratio.
DATA ?= ../shared/datasets

bench-venv: venv
	$(BIN)/pip install -q -e '.[dev,bench]'

bench-em: bench-venv
	$(BIN)/python benchmarks/em_speed.py

bench-accuracy: bench-venv
	$(BIN)/python benchmarks/accuracy.py --data $(DATA)

bench-api: bench-venv
	$(BIN)/python benchmarks/api_load.py
