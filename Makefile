# tornado_channels: `make run` serves, `make test` tests. Both set themselves up.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 5000
PYTEST_ARGS ?=

.PHONY: help install run-deps test-deps run stop status serve test test-fast lint format flags js-types clean conformance bench bench-nchan

help:
	@echo "make run    - one worker per core under supervisord, nginx in front on http://127.0.0.1:$(PORT), Redis"
	@echo "make stop   - stop everything make run started;  make status - show it"
	@echo "make serve  - one process in the foreground on the embedded broker (no Redis, no nginx)"
	@echo "make test   - install what the tests need and run the whole suite"
	@echo "make test-fast - the pure and in-process tests only (no processes, Redis, nginx, browser)"
	@echo "make lint   - ruff and mypy"
	@echo "make js-types - tornado-channels.d.ts made again from the JS client's JSDoc (tsc, pinned)"
	@echo "make bench  - fan-out (one process, and through nginx), latency, publish cost, memory per connection, the clients' publishing paths, the outbox, events, a 3-minute soak (BENCH_ARGS=--idle 10000; --soak 3600 --soak-channels 5000000; --soak-only; the scale curve: --scale 10000,50000,100000 [--scale-only])"
	@echo "make bench-nchan - the same scenarios against ours and against Nchan (nginx), side by side"
	@echo "make conformance - Autobahn|Testsuite against a worker and through nginx (needs Python 2.7: PYTHON27=...)"
	@echo "make clean  - remove the virtualenv and build leftovers"

# The virtualenv, rebuilt whenever the package's requirements change.
$(STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools says, on every editable install, that a folder named like the
	@# package may shadow it: true of every checkout, and noise here.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e '.[client,test,lint,deploy,outbox]'
	@# A checkout that once ran the (since removed) mypyc build: its extension
	@# modules would be imported before the sources they were built from.
	find tornado_channels -name '*.so' -delete
	touch $@

install: $(STAMP)

# Debian packages, as command=package pairs: what `make run` runs (nginx in
# front, redis-server when no Redis answers) and what the tests run for real
# (private Redis servers, nginx, chromium for the pages, PostgreSQL for the outbox).
RUN_DEPS  := nginx=nginx redis-server=redis-server
POSTGRES  := /usr/lib/postgresql/15/bin/postgres
TEST_DEPS := $(RUN_DEPS) chromium=chromium $(POSTGRES)=postgresql

# Install the missing ones with apt-get as root; otherwise say what to install.
# A pair's left side may also be a file's absolute path (a module, not a command).
define install_missing
	@missing=""; for pair in $(1); do \
	  command -v "$${pair%%=*}" >/dev/null 2>&1 || [ -x "/usr/sbin/$${pair%%=*}" ] \
	    || [ -f "$${pair%%=*}" ] || missing="$$missing $${pair#*=}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing from Debian:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing (Debian: sudo apt-get install$$missing)" >&2; exit 1; \
	  fi; \
	fi
endef

run-deps:
	$(call install_missing,$(RUN_DEPS))

test-deps:
	$(call install_missing,$(TEST_DEPS))

# Everything up in the background: workers under supervisord, nginx on $(PORT).
run: install run-deps
	TC_PORT=$(PORT) $(if $(REDIS_URL),TORNADO_CHANNELS_REDIS_URL=$(REDIS_URL)) deploy/up.sh

# Returns once supervisord and everything under it have exited (workers drain first).
stop:
	@if [ -S .run/supervisor.sock ] && pid=$$(deploy/supervisorctl pid 2>/dev/null); then \
	  deploy/supervisorctl shutdown; \
	  for _ in $$(seq 1 300); do kill -0 "$$pid" 2>/dev/null || exit 0; sleep 0.1; done; \
	  echo "supervisord ($$pid) still running after 30 s" >&2; exit 1; \
	else echo "not running"; fi

# deploy/supervisorctl exits 0 when only the private Redis is (rightly) STOPPED.
status:
	@if [ -S .run/supervisor.sock ]; then deploy/supervisorctl status; \
	else echo "not running (make run starts it)"; fi

# One process in the foreground on the embedded broker: no Redis, no nginx.
serve: install
	@echo "one process on http://127.0.0.1:$(PORT) (no nginx here: subscribe at ws://127.0.0.1:$(PORT)/<channel>)"
	$(BIN)/tornado-channels --port $(PORT) $(if $(REDIS_URL),--redis-url $(REDIS_URL))

# In parallel, one pytest process per core (tests/helpers/support.py gives each its own ports);
# TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: install test-deps
	$(BIN)/python -m pytest -W error -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# No processes, nginx or browser: seconds, for the edit-test loop. Its tests mostly wait (for a
# timeout, a silence, a private Redis), so it runs more pytest processes than there are cores.
FAST_WORKERS ?= 4
test-fast: install
	$(BIN)/python -m pytest -W error -n $(FAST_WORKERS) -m "not processes" --ignore=tests/system $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check tornado_channels tests
	$(BIN)/ruff format --check tornado_channels tests
	$(BIN)/mypy

format: install
	$(BIN)/ruff format tornado_channels tests
	$(BIN)/ruff check --fix tornado_channels tests

# docs/flags.md's table, made again from the settings (a test checks it is current).
flags: install
	$(BIN)/python -m tests.helpers.flags_doc

# tornado-channels.d.ts, made again from the client's JSDoc by tsc (a test checks it is current).
js-types: install
	$(BIN)/python -m tests.helpers.js_types

clean:
	find tornado_channels -name '*.so' -delete
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Autobahn|Testsuite's fuzzing client (it runs on Python 2.7 only, from its own
# virtualenv) against one worker and through nginx in front of a deployment;
# fails on any case worse than tests/conformance/baseline.py.
# Python 2.7 for Autobahn: the newest pyenv has, or one on the PATH.
PYTHON27       ?= $(or $(lastword $(sort $(wildcard $(HOME)/.pyenv/versions/2.7*/bin/python))),$(shell command -v python2.7 2>/dev/null),python2.7)
AUTOBAHN_VENV  ?= .venv-autobahn
AUTOBAHN_STAMP := $(AUTOBAHN_VENV)/.installed

$(AUTOBAHN_STAMP):
	$(PYTHON27) -m pip install --quiet 'virtualenv<20.22'
	$(PYTHON27) -m virtualenv --quiet $(AUTOBAHN_VENV)
	$(AUTOBAHN_VENV)/bin/python -m pip install --quiet autobahntestsuite==25.10.1
	touch $@

conformance: install run-deps $(AUTOBAHN_STAMP)
	$(BIN)/python -m tests.conformance.run --wstest $(AUTOBAHN_VENV)/bin/wstest

# Fan-out, latency, publish cost and idle memory of one process on the embedded broker (then
# two on a private Redis); prints a Markdown table, fails on any lost/duplicated/reordered message.
bench: install
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)

# Every scenario against ours (as `make bench`) and against Nchan (Debian's nginx with
# libnginx-mod-nchan, one worker; two for the 2-process scenario) in one run, side by side.
# Nchan is a module, not a command: installed when its .so is there.
NCHAN_MODULE := /usr/lib/nginx/modules/ngx_nchan_module.so
bench-nchan: install
	$(call install_missing,nginx=nginx $(NCHAN_MODULE)=libnginx-mod-nchan)
	$(BIN)/python -m tests.bench.run --nchan $(BENCH_ARGS)
