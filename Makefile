# The two commands of the README: `make run` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test setup test-setup bench clean

$(BIN)/a2e-bridge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' -e clients/python
	touch $@

setup: $(BIN)/a2e-bridge

run: setup
	$(BIN)/a2e-bridge serve

test: setup
	./scripts/test-setup.sh
	$(BIN)/ruff check bridge tests clients bench scripts
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python bench/relay_latency.py
	$(BIN)/python bench/stream_latency.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
