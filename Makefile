# coinquote — the commands the README names. Everything runs from a virtualenv in .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FAKE_CMC_PORT ?= 8001

LOWEST ?= .venv-lowest

.PHONY: run demo test lint test-unit test-integration test-e2e test-lowest system-deps fake-cmc bench \
        simulate chaos image clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The stamps re-install when the package metadata changes.
$(VENV)/.run-deps: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: $(VENV)/.run-deps
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

## run: migrate the database (SQLite under instance/ unless DATABASE_URL), serve on 127.0.0.1:8000
## with one refresher beside gunicorn; Ctrl-C stops both
run: $(VENV)/.run-deps
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/flask --app wsgi refresh & refresher=$$!; \
	trap "kill $$refresher 2>/dev/null; wait $$refresher" EXIT INT TERM; \
	$(BIN)/gunicorn wsgi:app

## demo: the service offline, against the local fake CoinMarketCap on port $(FAKE_CMC_PORT)
demo: $(VENV)/.test-deps
	$(BIN)/python -m tests.fake_cmc --port $(FAKE_CMC_PORT) & fake=$$!; \
	trap "kill $$fake" EXIT INT TERM; \
	CMC_BASE_URL=http://127.0.0.1:$(FAKE_CMC_PORT) $(MAKE) --no-print-directory run

## fake-cmc: only the fake CoinMarketCap (accepts the sandbox key, or FAKE_CMC_KEY)
fake-cmc: $(VENV)/.test-deps
	$(BIN)/python -m tests.fake_cmc --port $(FAKE_CMC_PORT) $(if $(FAKE_CMC_KEY),--api-key $(FAKE_CMC_KEY))

## system-deps: install the Debian packages the tests need (PostgreSQL, memcached, nginx, Chromium,
## buildah, debootstrap) if missing
system-deps:
	PYTHON=$(PYTHON) scripts/ensure-system-packages.sh

## test: lint and types, then every tier — unit, integration (real PostgreSQL + memcached), end-to-end
test: system-deps lint
	$(BIN)/python -m pytest

## lint: ruff (lint, import order, 100 columns) and mypy (strict for src/domain); pyproject.toml
lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/mypy

test-unit: $(VENV)/.test-deps
	$(BIN)/python -m pytest tests/unit

test-integration test-e2e: system-deps $(VENV)/.test-deps
	$(BIN)/python -m pytest tests/$(subst test-,,$@)

# A second virtualenv with every dependency at the lowest version setup.cfg allows.
$(LOWEST)/.test-deps: setup.cfg pyproject.toml constraints/lowest.txt
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(LOWEST)/bin/python -m pip install --quiet -e '.[test]' -c constraints/lowest.txt
	touch $@

## test-lowest: the unit tier against the lowest allowed versions (constraints/lowest.txt), in $(LOWEST)
test-lowest: $(LOWEST)/.test-deps
	$(LOWEST)/bin/python -m pytest tests/unit -p no:cacheprovider

## bench: the benchmark (needs wrk, PostgreSQL and memcached installed); see bench/README.md
bench: $(VENV)/.test-deps
	$(BIN)/python -m bench.run --duration 10 --rounds 3 --flood 100000 --soak 300

## simulate: a compressed day of mixed traffic against a CoinMarketCap plan (bench/README.md)
simulate: $(VENV)/.test-deps
	$(BIN)/python -m bench.simulate $(SIMULATE_ARGS)

## chaos: the production shape under mixed load while its parts are killed; per-phase figures,
## exit 1 when an invariant breaks (bench/README.md, Chaos). CHAOS_ARGS=--short: CI's version
chaos: system-deps $(VENV)/.test-deps
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

IMAGE ?= coinquote:latest

## image: build the image $(IMAGE): docker when its daemon answers, else buildah (as root), on the
## Debian stand-in base when python:3.11-slim-bookworm cannot be pulled (README > Deploy)
image:
	scripts/image.sh build $(IMAGE)

clean:
	rm -rf $(VENV) $(LOWEST) .pytest_cache *.egg-info
