# fraudstream — the two set-up commands are `make demo` and `make test`.
# Both bootstrap everything on a fresh machine: the virtual environment, the pinned Python
# packages, the Kafka jars (Maven, cached outside the repo) and a Redis server binary.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DURATION ?= 120
PYTEST_ARGS ?=

.PHONY: help install lock lint typecheck unit integration test faults audit demo infra-up infra-down infra-status clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the pinned packages

lock:  ## re-resolve the pins in pyproject.toml into requirements.lock
	$(PYTHON) -m venv /tmp/fraudstream-lock && /tmp/fraudstream-lock/bin/pip install --quiet '.[dev]'
	/tmp/fraudstream-lock/bin/pip freeze --exclude-editable | grep -v '^fraudstream' > requirements.lock

lint: install  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: lint

unit: install  ## fast tests, no servers
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test: install lint audit  ## everything: lint, types, audit, unit, integration (starts and stops Kafka and Redis)
	$(BIN)/fraudstream infra fetch
	$(BIN)/pytest $(PYTEST_ARGS)

# Fails on any unwaived vulnerability; packages no service could audit (a restricted
# network) are listed loudly and fail only with FRAUD_AUDIT_STRICT=1 (see scripts/audit.py).
audit: install  ## pip-audit of the pinned packages (requirements.lock), waivers in .pip-audit-waivers
	$(BIN)/python scripts/audit.py

faults: install  ## the fault-injection suite (kill -9, broker and Redis faults, poison, spikes)
	$(BIN)/fraudstream infra fetch
	$(BIN)/pytest tests/faults $(PYTEST_ARGS)

demo: install  ## the whole system end to end on local servers; DURATION=0 runs until Ctrl-C
	$(BIN)/fraudstream demo --duration $(DURATION)

infra-up: install
	$(BIN)/fraudstream infra up
infra-down: install
	$(BIN)/fraudstream infra down
infra-status: install
	$(BIN)/fraudstream infra status

clean:  ## stop local servers and remove local state (the jar cache is kept)
	-$(BIN)/fraudstream infra down
	rm -rf .fraudstream .pytest_cache .mypy_cache .ruff_cache
