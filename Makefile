PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# mypy and import-linter read `embedq` as it installs: the top-level folders mapped into it
# (pyproject's package-dir), laid out as symlinks, so their messages name the real files.
STAGE := $(VENV)/stage

.PHONY: demo test test-fast lint faults bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/embedq demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	rm -rf $(STAGE) && mkdir -p $(STAGE)
	cp -rs $(CURDIR)/embedq $(STAGE)/embedq
	cp -rs $(CURDIR)/listener $(STAGE)/embedq/listener
	cp -rs $(CURDIR)/webhook $(STAGE)/embedq/webhook
	cp -rs $(CURDIR)/sql $(STAGE)/embedq/sql
	cd $(STAGE) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml
	cd $(STAGE) && $(CURDIR)/$(BIN)/lint-imports $(CURDIR)/pyproject.toml --no-cache

test: lint
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow'

faults: $(STAMP)
	$(BIN)/python -m pytest tests/faults --faults-long -p no:cacheprovider --timeout 1800

bench: $(STAMP)
	$(BIN)/python bench/triggers.py

clean:
	rm -rf $(VENV) .embedq .pytest_cache .mypy_cache .ruff_cache
