# Two commands matter: `make run` and `make test`. Both build the environment themselves
# from the lock files, on any machine with Python 3.11+ and pip: requirements.lock holds what
# the program runs on (the image installs only that), requirements-dev.lock adds the tools.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck imports contracts pytest lock bench image clean

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)  ## migrate and serve on http://127.0.0.1:8000 (profile "dev" unless TESSERA_PROFILE says)
	TESSERA_PROFILE=$${TESSERA_PROFILE:-dev} $(BIN)/tessera db upgrade
	TESSERA_PROFILE=$${TESSERA_PROFILE:-dev} $(BIN)/tessera serve

test: lint typecheck imports contracts pytest  ## everything CI checks

lint: $(STAMP)
	$(BIN)/ruff check src tests migrations
	$(BIN)/ruff format --check src tests migrations

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

contracts: $(STAMP)  ## each contract against its snapshot: a change needs the version (and snapshot) it calls for
	$(BIN)/tessera contracts check

pytest: $(STAMP)
	$(BIN)/pytest

lock:  ## re-resolve both lock files after changing dependencies in pyproject.toml
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
		-c requirements.lock -o requirements-dev.lock

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

image:  ## the container image, where a Docker engine runs: tessera:<version> and tessera:local
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(shell git rev-parse HEAD) \
		-t tessera:$(VERSION) -t tessera:local .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
