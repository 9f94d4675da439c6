# OpenRay: `make demo` runs the main job, `make test` runs every test (what .ci/run calls).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: setup demo test test-unit test-integration test-e2e lint bench cluster-up cluster-down protos

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[operator,test]'
	rm -f $(VENV)/.installed-*; touch $@

demo: setup
	$(PY) examples/counter.py

lint: setup
	$(VENV)/bin/ruff check .

test-unit: setup
	$(PY) -m pytest -q tests/unit

test-integration: setup
	$(PY) -m pytest -q tests/integration

test: lint test-unit test-integration

bench: setup
	$(PY) bench/run.py
