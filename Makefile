# OpenRay: `make demo` runs the main job, `make test` runs every test (what .ci/run calls).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: setup demo test test-unit test-integration test-e2e lint bench cluster-up cluster-down protos tools images

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[operator,test]'
	# Path entries (not only the editable finder) so that a stray ray/ directory beside a script, such as
	# the default temp dir /tmp/ray, cannot shadow the package as a namespace package.
	printf '%s\n' "$(CURDIR)/runtime" "$(CURDIR)/operator" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/openray-src.pth"
	rm -f $(VENV)/.installed-*; touch $@

demo: setup
	$(PY) examples/counter.py

lint: setup
	$(VENV)/bin/ruff check .

test-unit: setup
	$(PY) -m pytest -q tests/unit

# The slowest tests are listed at the end (the place to look when CI grows past its time goal).
test-integration: setup
	$(PY) -m pytest -q --durations=15 tests/integration

# tools before test-integration: its Helm chart tests need the helm binary that `tools` builds.
test: lint test-unit tools test-integration test-e2e

# ---- the real one-node Kubernetes for tests/e2e (tests/e2e/cluster; needs root) ----
E2E_CLUSTER := tests/e2e/cluster

# Debian packages, then kube-*, etcd, kubectl, helm and CoreDNS built from the Go module proxy
# (cached under ${OPENRAY_CACHE:-~/.cache/openray}, keyed by version), and Debian's Prometheus for the
# metrics test (unpacked in the same cache, not installed), and Debian's Chromium for the dashboard UI's
# browser tests (Playwright drives it; no browser download).
tools:
	$(E2E_CLUSTER)/install-packages
	$(E2E_CLUSTER)/build-binaries
	tests/integration/tools/install-prometheus >/dev/null
	tests/integration/tools/install-browser >/dev/null

# Base images and images/*/Dockerfile with buildah (rebuilt when their inputs change); loaded
# into the cluster right away when it is up.
images: tools
	$(E2E_CLUSTER)/build-images
	$(E2E_CLUSTER)/load-images --if-running

cluster-up: images
	$(E2E_CLUSTER)/cluster-up

cluster-down:
	$(E2E_CLUSTER)/cluster-down

# cluster-up, pytest tests/e2e, cluster-down (always; unless the cluster was already up).
test-e2e: setup images
	$(E2E_CLUSTER)/run-e2e $(PY) --durations=10

bench: setup
	$(PY) bench/run.py
