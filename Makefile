# Tracker: `make run` starts the server, `make test` runs the test suite.
# Both build the Python virtual environment (.venv/) on first use; later runs reuse it.

PYTHON ?= python3
VENV := .venv
# Two installs: the server alone (make run), and the server with its test tools (make test and the rest).
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
WEB_STAMP := web/node_modules/.installed

# `make run HOST=0.0.0.0 PORT=9000 DATA=/srv/tracker`. Unset, `tracker serve` reads TRACKER_HOST,
# TRACKER_PORT and TRACKER_DATA_DIR, then its defaults (127.0.0.1, 8086, ./data): the Makefile never
# overrides the environment with defaults of its own.
HOST ?=
PORT ?=
DATA ?=
SERVE_FLAGS := $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT)) $(if $(DATA),--data-dir $(DATA))
# `make test PYTEST_ARGS='-k write -x'`
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv web-deps vendor run test test-fast fixtures compat bench clean

help:
	@echo "Tracker"
	@echo "  make run     serve on http://127.0.0.1:8086 with data in ./data (HOST, PORT, DATA or TRACKER_* override)"
	@echo "  make test    run the test suite: the page scripts' unit tests (Node), then pytest (PYTEST_ARGS passed to it)"
	@echo "  make test-fast  the daily loop: every test but the slow ones (servers under load, crashes, browser)"
	@echo "  make compat  the differential test alone: Tracker vs a real InfluxDB 1.x, same data and queries, agreement printed"
	@echo "  make vendor  copy the pages' map and chart libraries from web/node_modules into the package (after an npm update)"
	@echo "  make bench   side-by-side load test against InfluxDB 1.x (see bench/README.md)"
	@echo "  make clean   remove .venv, node_modules and caches (never the data folder)"

venv: $(TEST_STAMP)

# The interpreter check and the virtual environment, shared by both installs.
define make_venv
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "error: $(PYTHON) not found; Tracker needs Python 3.11 or newer (make PYTHON=python3.12 picks another)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "error: Tracker needs Python 3.11 or newer, $(PYTHON) is $$($(PYTHON) -c 'import platform; print(platform.python_version())')" \
	       "(make PYTHON=python3.12 picks another)" >&2; exit 1; }
	@[ -x $(VENV)/bin/python ] || { echo "$(PYTHON) -m venv $(VENV)"; $(PYTHON) -m venv $(VENV) || { \
	  echo "error: could not create $(VENV); on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }; }
endef

# Reinstalled only when pyproject.toml or the compiled parser's sources change; the install is
# editable, so other code edits need no reinstall. The test install is the server's plus its test
# tools, so it counts as the server's install too (one build of the parser, not two).
$(RUN_STAMP): pyproject.toml setup.py tracker/_lineprotocol.pyx
	$(make_venv)
	$(VENV)/bin/pip install -e .
	@touch $@

$(TEST_STAMP): pyproject.toml setup.py tracker/_lineprotocol.pyx
	$(make_venv)
	$(VENV)/bin/pip install -e '.[test]'
	@touch $(RUN_STAMP) $@

# Front-end libraries come from npm once web/package.json exists; reinstalled only when it or its lock file changes.
web-deps:
	@if [ -f web/package.json ]; then \
	  if [ ! -f $(WEB_STAMP) ] || [ web/package.json -nt $(WEB_STAMP) ] || [ web/package-lock.json -nt $(WEB_STAMP) ]; then \
	    echo "npm ci --prefix web"; \
	    npm ci --prefix web || exit 1; \
	    mkdir -p $(dir $(WEB_STAMP)) && touch $(WEB_STAMP); \
	  fi; \
	fi

# The pages' map and chart libraries, as web/package-lock.json pins them, are kept in the package
# (tracker/browser/vendor/, with their licences), so every install serves them without npm. After
# changing web/package.json: `make vendor`, and commit the copies; the tests check they match the lock.
VENDOR := tracker/browser/vendor
vendor: web-deps
	rm -rf $(VENDOR)/leaflet $(VENDOR)/uplot
	mkdir -p $(VENDOR)/leaflet/images $(VENDOR)/uplot
	cp web/node_modules/leaflet/LICENSE web/node_modules/leaflet/dist/leaflet.js web/node_modules/leaflet/dist/leaflet.css $(VENDOR)/leaflet/
	cp web/node_modules/leaflet/dist/images/*.png $(VENDOR)/leaflet/images/
	cp web/node_modules/uplot/LICENSE web/node_modules/uplot/dist/uPlot.iife.min.js web/node_modules/uplot/dist/uPlot.min.css $(VENDOR)/uplot/

run: $(RUN_STAMP)
	$(VENV)/bin/tracker serve $(strip $(SERVE_FLAGS))

test: venv web-deps fixtures
	cd web && node --test --test-reporter=spec test/*.test.mjs
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

test-fast: venv fixtures
	cd web && node --test test/*.test.mjs
	$(VENV)/bin/python -m pytest -q -m "not slow" -n 4 $(PYTEST_ARGS)

# Real GPX files other software wrote (GPSBabel, a Garmin eTrex, Runkeeper, NikePlus), as gpxpy's pinned
# source distribution ships them; downloaded once into the git-ignored tests/fixtures-cache/.
GPXPY_SDIST := gpxpy-1.6.2
FIXTURE_FILES := cerknicko-jezero.gpx cerknicko-without-times.gpx route.gpx track_with_speed.gpx \
	around-visnjan-with-car.gpx gpx_with_garmin_extension.gpx track-with-less-sec-time.gpx
FIXTURES := tests/fixtures-cache/gpxpy/.extracted

fixtures: $(FIXTURES)

$(FIXTURES): | venv
	@mkdir -p tests/fixtures-cache/gpxpy
	@[ -f tests/fixtures-cache/$(GPXPY_SDIST).tar.gz ] || $(VENV)/bin/pip download --quiet --no-deps --no-binary :all: \
	  gpxpy==1.6.2 -d tests/fixtures-cache
	tar -xzf tests/fixtures-cache/$(GPXPY_SDIST).tar.gz -C tests/fixtures-cache/gpxpy --strip-components=2 \
	  $(addprefix $(GPXPY_SDIST)/test_files/,$(FIXTURE_FILES))
	@touch $@

# The differential test alone, its report printed (agreement, then every difference by construct). Needs
# influxd (Debian: apt-get install influxdb); COMPAT_SEED and COMPAT_QUERIES pick another run.
compat: venv
	$(VENV)/bin/python -m pytest tests/test_influx_differential.py -q -s $(PYTEST_ARGS)

# DUR (seconds per run), WORKLOADS, BENCH_PORT and COMPARE are read from the environment or the make command line.
bench: venv
	bench/run.sh

clean:
	rm -rf $(VENV) web/node_modules tests/fixtures-cache .pytest_cache .hypothesis build dist *.egg-info tracker/_lineprotocol.c tracker/_lineprotocol.*.so
	find . -path ./data -prune -o -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
