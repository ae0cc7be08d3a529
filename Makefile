# tornado_channels: `make run` serves, `make test` tests. Both set themselves up.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 5000
PYTEST_ARGS ?=

.PHONY: help install system-deps run test lint format clean

help:
	@echo "make run    - serve on http://127.0.0.1:$(PORT) (embedded broker; REDIS_URL=redis://... to relay through Redis)"
	@echo "make test   - install what the tests need and run the whole suite"
	@echo "make lint   - ruff and mypy"
	@echo "make clean  - remove the virtualenv and build leftovers"

# The virtualenv, rebuilt whenever the package's requirements change.
$(STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	touch $@

install: $(STAMP)

# Debian packages the tests run for real: redis-server (private instances) and
# chromium (the pages in a headless browser). command=package pairs.
SYSTEM_DEPS := redis-server=redis-server chromium=chromium

system-deps:
	@missing=""; for pair in $(SYSTEM_DEPS); do \
	  command -v "$${pair%%=*}" >/dev/null 2>&1 || missing="$$missing $${pair#*=}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing from Debian:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing (Debian: apt-get install$$missing)" >&2; exit 1; \
	  fi; \
	fi

run: install
	$(BIN)/tornado-channels --port $(PORT) --list-channels $(if $(REDIS_URL),--redis-url $(REDIS_URL))

test: install system-deps
	$(BIN)/python -m pytest -W error $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check tornado_channels tests
	$(BIN)/ruff format --check tornado_channels tests
	$(BIN)/mypy

format: install
	$(BIN)/ruff format tornado_channels tests
	$(BIN)/ruff check --fix tornado_channels tests

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
