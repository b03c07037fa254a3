# Two commands set everything up on a fresh Debian or Ubuntu machine:
#   make demo   simulated fleet -> MQTT -> dataflow -> InfluxDB -> alerts, then a summary
#   make test   the whole test suite against private servers
#   make test-fast   the tests that start no server and are not slow (the every-minute loop)
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# The benchmarks are scripts no test runs, so a name a report path may use before setting
# it is refused here (mypy's possibly-undefined) rather than found at the end of a long run.
TYPECHECK := $(VENV)/bin/mypy src simulators && \
	$(VENV)/bin/mypy --enable-error-code possibly-undefined benchmarks

.PHONY: setup demo test test-fast lint typecheck bench clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PY) -m gridwatch.demo

test: setup
	$(VENV)/bin/ruff check .
	$(TYPECHECK)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not services and not slow" -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(TYPECHECK)

typecheck: setup
	$(TYPECHECK)

bench: setup
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/models.py
	$(PY) benchmarks/storage.py
	$(PY) benchmarks/simulate.py
	$(PY) benchmarks/cli_startup.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
