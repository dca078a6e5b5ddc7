# Two commands on a fresh machine: `make demo` runs the main job, `make test` passes the tests.
# Each installs what it needs: a virtualenv with the project's packages, then (on first use) the
# Apache Kafka jars from Maven Central into ~/.cache/patentmatch.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench kafka clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/patentmatch demo

test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check schemas matcher streams tests bench
	$(BIN)/mypy

kafka: $(STAMP)
	$(BIN)/patentmatch kafka

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
