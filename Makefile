# pytest-kuberay: every target installs what it needs itself (virtualenv, pip packages, apt packages).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
VERSION ?= v1.5.0
VERSIONS ?= v1.5.0,v1.5.1
SUITES ?= suites
DEBIAN_PINS := toolchain/debian-packages.txt
STAMP := $(VENV)/.installed
comma := ,

.PHONY: setup test unit lint e2e conformance repro bench bench-local bench-e2e bench-verdict toolchain toolchain-all wheel-check clean

$(STAMP): pyproject.toml $(DEBIAN_PINS)
	@bash toolchain/install-debian-packages.sh $(DEBIAN_PINS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,kind]'
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	@if command -v go >/dev/null && [ ! -x $(HOME)/.cache/pytest-kuberay/tools/actionlint ]; then \
	  GOBIN=$(HOME)/.cache/pytest-kuberay/tools go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12; fi
	$(VENV)/bin/ruff check pytest_kuberay tests benchmarks suites
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## the plugin's own tests: unit, pytester, real Ray Serve, and the local provider where it can run
test: lint toolchain
	$(PYTEST) tests -p no:cacheprovider -ra $(PYTEST_ARGS)

unit: $(STAMP)
	$(PYTEST) tests/unit tests/plugin -p no:cacheprovider -q

## the conformance suites against a real cluster (provider: auto = kind if Docker answers, else local)
e2e: toolchain
	$(PYTEST) $(SUITES) --kuberay-version=$(VERSIONS) -p no:cacheprovider -ra $(PYTEST_ARGS)

CONFORMANCE_VERSIONS ?= v1.5.0,v1.5.1,v1.6.0,v1.6.1,v1.6.2
CONFORMANCE_DIR ?= kuberay-artifacts/conformance
## every suite x every buildable release, one pytest run (and cluster) per version, then docs/conformance.md.
## SOURCE=<kuberay checkout> SOURCE_VERSION=v1.7.0 adds a column built from that checkout. A failing
## column does not stop the others: the table shows what each version did. The results behind the page are
## kept in docs/conformance/results.json, so a run of some versions adds to the table; FRESH=1 starts it over.
conformance: $(STAMP)
	$(MAKE) toolchain VERSIONS=$(CONFORMANCE_VERSIONS) VERSION=$(firstword $(subst $(comma), ,$(CONFORMANCE_VERSIONS)))
	@set -uo pipefail; mkdir -p $(CONFORMANCE_DIR); runs=(); sources=(); \
	for v in $(subst $(comma), ,$(CONFORMANCE_VERSIONS)); do \
	  $(PYTEST) $(SUITES) --kuberay-version=$$v --kuberay-artifacts=$(CONFORMANCE_DIR)/$$v -p no:cacheprovider \
	    -rxX $(PYTEST_ARGS) 2>&1 | tee $(CONFORMANCE_DIR)/$$v.log; runs+=($(CONFORMANCE_DIR)/$$v); done; \
	if [ -n "$(SOURCE)" ]; then \
	  $(PYTEST) $(SUITES) --kuberay-version=$(SOURCE_VERSION) --kuberay-source=$(SOURCE) \
	    --kuberay-artifacts=$(CONFORMANCE_DIR)/$(SOURCE_VERSION)-source -p no:cacheprovider -rxX $(PYTEST_ARGS) 2>&1 \
	    | tee $(CONFORMANCE_DIR)/$(SOURCE_VERSION)-source.log; runs+=($(CONFORMANCE_DIR)/$(SOURCE_VERSION)-source); \
	  sources+=(--source "$(SOURCE_VERSION)=built from the checkout $(SOURCE)"); fi; \
	$(VENV)/bin/pytest-kuberay conformance "$${runs[@]}" "$${sources[@]}" $(if $(FRESH),--fresh) --out docs/conformance.md

## reproduce bug 4189 on one version (maxSurge 20/stepSize 20): prints the verdict and the artifact paths
repro: toolchain
	$(PYTEST) suites/incremental_upgrade -k "keeps_old_serve_config and surge20" --kuberay-version=$(VERSION) \
	  -p no:cacheprovider -rxX $(PYTEST_ARGS)

## build (or reuse) the Docker-free local cluster's binaries; the first build takes ~25 minutes on 2 cores.
## Skipped where Go is missing: the local provider then says so itself.
toolchain: $(STAMP)
	@if command -v go >/dev/null; then $(VENV)/bin/pytest-kuberay toolchain \
	  --kuberay-version=$(VERSIONS),$(VERSION); else echo "no Go: local provider binaries not built"; fi

## the package as users get it: build the wheel, install it into a fresh venv, and from an empty
## directory run the 4189 repro with `pytest --pyargs pytest_kuberay.suites` (XFAIL on v1.5.0)
wheel-check: toolchain
	@set -euo pipefail; work=$$(mktemp -d -t pytest-kuberay-wheel-XXXXXX); trap 'rm -rf "$$work"' EXIT; \
	$(PY) -m pip wheel -q --no-deps -w "$$work/dist" . ; \
	$(PYTHON) -m venv "$$work/venv"; "$$work/venv/bin/pip" install -q --upgrade pip; \
	"$$work/venv/bin/pip" install -q "$$work"/dist/*.whl; mkdir "$$work/empty"; cd "$$work/empty"; \
	"$$work/venv/bin/pytest" --pyargs pytest_kuberay.suites -k "keeps_old_serve_config and surge20" \
	  --kuberay-version=v1.5.0 -p no:cacheprovider -rxX $(PYTEST_ARGS) | tee "$$work/out.txt"; \
	grep -q "1 xfailed" "$$work/out.txt" && grep -q "bug 4189 on v1.5.0: reproduced, as registered" "$$work/out.txt"

## wall time and peak memory of each conformance scenario on the local provider (needs root)
bench-e2e: toolchain
	$(PY) benchmarks/e2e_bench.py --versions=$(VERSIONS)

## time to verdict of the 4189 repro by phase against its physical minimum, fresh cluster then kept (root)
bench-verdict: toolchain
	$(PY) benchmarks/verdict_bench.py --version=$(VERSION)
	$(PY) benchmarks/verdict_bench.py --version=$(VERSION) --kept

toolchain-all: $(STAMP)
	$(VENV)/bin/pytest-kuberay toolchain --all

bench: $(STAMP)
	$(PY) benchmarks/probe_bench.py

## local provider: recorded cold build times and measured warm start-to-ready (needs root)
bench-local: $(STAMP)
	$(PY) benchmarks/local_cluster_bench.py

clean:
	rm -rf $(VENV) kuberay-artifacts .pytest_cache .mypy_cache .ruff_cache *.egg-info

## operator mutants: v1.7.0's source with one fault each, and the suite test that must catch it (tools/mutants/,
## docs/mutants.md). MUTANT_ARGS="--only NAME" runs one, "--list" lists them. Needs root and /tmp/kuberay-v1.7.0.
.PHONY: mutants
mutants:
	$(VENV)/bin/python tools/mutants/run.py $(MUTANT_ARGS)
