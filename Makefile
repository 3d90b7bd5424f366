# mdfeed developer commands. Each target does its own set-up on a fresh machine:
# the virtualenv, Python packages (pip caches the quickfix wheel it builds from source),
# Debian packages and the Maven jars of the local stack.
#
#   make run    the whole pipeline in one process on the embedded default
#   make test   ruff, mypy --strict, unit and integration tests against the real
#               Kafka, Cassandra and Mosquitto, which it starts and stops itself
#
# ARGS passes options through: make run ARGS="--config local-stack"

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# The QuickFIX C++ headers the ingest's native feed is compiled against: the source
# distribution of the quickfix version pyproject.toml pins, from PyPI.
QUICKFIX_VERSION := 1.16.0
QUICKFIX_SRC := .build/quickfix-$(QUICKFIX_VERSION)
export MDFEED_QUICKFIX_INCLUDE := $(CURDIR)/$(QUICKFIX_SRC)/C++

.PHONY: run test install system-deps web lint typecheck unit integration bench harness stack-up stack-down proto clean

$(VENV)/bin/pip:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

$(QUICKFIX_SRC)/C++/Application.h: | $(VENV)/bin/pip
	@echo "== QuickFIX $(QUICKFIX_VERSION) C++ headers (its source distribution)"
	mkdir -p .build
	$(BIN)/pip download --quiet --no-deps --no-binary :all: --dest .build quickfix==$(QUICKFIX_VERSION)
	tar -xzf .build/quickfix-$(QUICKFIX_VERSION).tar.gz -C .build
	touch $@

$(VENV)/.deps-installed: pyproject.toml $(QUICKFIX_SRC)/C++/Application.h | $(VENV)/bin/pip
	@echo "== python packages (the first install builds quickfix from source: ~5 minutes)"
	$(BIN)/pip install --progress-bar off '.[dev]'
	touch $@

system-deps:
	@missing=""
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"
	command -v mvn >/dev/null || missing="$$missing maven"
	test -x /usr/sbin/mosquitto || missing="$$missing mosquitto mosquitto-clients"
	test -x /usr/bin/chromium || missing="$$missing chromium"
	command -v npm >/dev/null || missing="$$missing nodejs npm"
	if [ -n "$$missing" ]; then
	  echo "== debian packages:$$missing"
	  apt-get update -q
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing
	fi

# The chart page's JavaScript (lightweight-charts; playwright-core drives Chromium in the
# end-to-end test), pinned by web/package-lock.json.
web/node_modules/.installed: web/package-lock.json
	@echo "== npm packages for the chart page"
	if ! command -v npm >/dev/null; then
	  apt-get update -q
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
	fi
	npm ci --prefix web --no-audit --no-fund
	touch $@

web: web/node_modules/.installed

# The project itself is installed (not editable) every time, so tests import the
# installed package: a module left out of the package fails the tests.
install: $(VENV)/.deps-installed $(QUICKFIX_SRC)/C++/Application.h
	@# A stale build/ would put modules compiled earlier into the wheel.
	rm -rf build
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --force-reinstall .

run: install web
	$(BIN)/mdfeed run $(ARGS)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: install
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

# Benchmarks print their figures; several need the real Kafka, Cassandra and Mosquitto, so the stack
# runs for the duration.
bench: install system-deps
	@trap '$(BIN)/mdfeed stack down' EXIT
	$(BIN)/mdfeed stack up
	$(BIN)/pytest bench -s --benchmark-columns=mean,median,ops,rounds --benchmark-sort=mean $(PYTEST_ARGS)

# The end-to-end harness: starts what it needs itself (Kafka and Mosquitto from the local
# stack, the venue, mdfeed ingest and fanout, the subscribers) and stops it again.
# ARGS passes options: make harness ARGS="--scenarios fixed --rate 2000"
harness: install system-deps
	$(BIN)/mdfeed bench $(ARGS)

stack-up: install system-deps
	$(BIN)/mdfeed stack up

stack-down: install
	$(BIN)/mdfeed stack down

proto: install
	$(BIN)/mdfeed codegen proto --out proto

test: install system-deps web
	@start=$$(date +%s)
	trap '$(BIN)/mdfeed stack down' EXIT
	$(BIN)/mdfeed stack up
	echo "== ruff"
	$(BIN)/ruff check .
	echo "== mypy --strict"
	$(BIN)/mypy
	echo "== pytest (unit and integration)"
	$(BIN)/pytest tests $(PYTEST_ARGS)
	echo "== test command finished in $$(( $$(date +%s) - start )) s"

clean:
	rm -rf build .build *.egg-info .mypy_cache .ruff_cache .pytest_cache
