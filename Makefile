# One command each: `make run` (`crowd demo`: the service on embedded servers, with a
# simulated crowd answering a batch) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# Every install takes its versions from the lock (`make upgrade` refreshes it), so a release
# published tomorrow cannot change what `make run` and `make test` install today.
LOCK    = constraints.txt
PIP     = $(BIN)/pip install -q -c $(LOCK)
PIP_VERSION = 26.3

.PHONY: venv run-venv bench-venv run test lint chromium upgrade bench-em bench-accuracy bench-api \
	compose-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q pip==$(PIP_VERSION)

# What running needs (`make run`), and what testing adds (`make test`): two stamps, so that
# `make run` installs no test tools and a later `make test` adds only those.
$(VENV)/.installed-run: pyproject.toml $(LOCK) | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(LOCK) | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@ $(VENV)/.installed-run

run-venv: $(VENV)/.installed-run

venv: $(VENV)/.installed-dev

run: run-venv
	$(BIN)/crowd demo

# Resolve every dependency (all extras, every platform and Python the project supports) to
# its newest allowed release and write the lock; review the diff, run `make test`, commit.
upgrade: $(BIN)/python
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --upgrade -q -o $(LOCK)

lint: venv
	$(BIN)/ruff check crowd workers tests benchmarks deploy
	$(BIN)/ruff format --check crowd workers tests benchmarks deploy
	$(BIN)/mypy

# The browser tests (tests/web/) drive the system's Chromium (Debian packages); install it
# when missing (as root, or through sudo).
CHROMIUM ?= $(or $(CROWD_TEST_CHROMIUM),/usr/bin/chromium)
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

chromium:
	@[ -x $(CHROMIUM) ] || { echo "installing chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $(SUDO) apt-get install -y -qq chromium chromium-driver; }

# The suite runs on TEST_PROCESSES pytest-xdist processes (each with its own database and
# Redis database, or its own embedded servers); worksteal evens out its few long tests.
TEST_PROCESSES ?= 2

test: lint chromium
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist worksteal --durations=25

# docker-compose.yml run for real, with faults (issue 18); .ci/run calls it after `make test`
# (docs/DEPLOY.md, "Tested on this machine": 4-5 min warm, about 12 cold). It
# starts crowd's own Docker engine when none answers (as root: installs docker.io first),
# builds the base-image stand-ins once (cached in the engine, outside the clone), then
# deploy/compose_test.py builds, starts, checks and tears down the stack.
compose-test: run-venv
	@DOCKER_HOST="$$(deploy/docker-engine.sh)" || exit 1; export DOCKER_HOST; \
	  deploy/local-images.sh && $(BIN)/python deploy/compose_test.py

# Benchmarks (not part of the tests): each prints our figure beside its peer's, as a ratio.
DATA ?= ../shared/datasets

bench-venv: venv
	$(PIP) -e '.[dev,bench]'

bench-em: bench-venv
	$(BIN)/python benchmarks/em_speed.py

bench-accuracy: bench-venv
	$(BIN)/python benchmarks/accuracy.py --data $(DATA)

bench-api: bench-venv
	$(BIN)/python benchmarks/api_load.py
