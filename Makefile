# Two commands matter: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed

.PHONY: help deps demo test unit integration e2e lint typecheck bench reliability infra-check package stack-up stack-down clean

help:
	@echo "make demo        run a migration wave on the local stack"
	@echo "make test        lint, type-check and run every test tier"
	@echo "make unit | integration | e2e | lint | typecheck | bench | reliability | infra-check"

deps: $(STAMP_PY) $(STAMP_NODE)

$(STAMP_PY): pyproject.toml requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(STAMP_NODE): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff format --check .

typecheck: deps
	$(VENV)/bin/mypy

# The tiers, by folder: tests/unit (no process started), tests/contract (the fake and the real adapter run the
# same tests), tests/integration (one component against the local stack), tests/e2e (the whole path).
unit: deps
	$(PY) -m pytest tests/unit -q

integration: deps
	$(PY) -m pytest tests/contract tests/integration -q

e2e: deps
	$(PY) -m pytest tests/e2e -q

test: deps lint typecheck infra-check
	$(PY) -m pytest -q
	$(PY) -m bench.run --quick --check --output .state/bench-quick.json
	$(PY) -m reliability.run --quick --check --output .state/reliability-quick.json

infra-check:
	infra/check.sh

# The two deployables as docs/DEPLOY.md deploys them: build/functionapp.zip and build/lambda/ (the
# Lambdas' CodeUri). tests/integration/package installs each in a clean venv and runs it (part of `make test`).
package: deps
	$(PY) infra/tools/package.py build

demo: deps
	$(VENV)/bin/aws2azure demo $(DEMO_ARGS)

bench: deps
	$(PY) -m bench.run

reliability: deps
	$(PY) -m reliability.run --check

stack-up: deps
	$(VENV)/bin/aws2azure stack up

stack-down: deps
	$(VENV)/bin/aws2azure stack down

clean:
	-$(VENV)/bin/aws2azure stack down
	rm -rf .state .pytest_cache .mypy_cache .ruff_cache
