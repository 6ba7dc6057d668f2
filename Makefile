# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_WORLD ?= data/world
DEMO_PLAYLISTS ?= 3000
DEMO_SEED ?= 0
PYTEST_ARGS ?=

.PHONY: venv demo test test-all bench lint clean browser

# The venv is (re)built when a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found); set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Chromium for the end-to-end browser test (Debian's package; never `playwright install`).
browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && (apt-get install -y chromium fonts-noto-color-emoji || (apt-get update && apt-get install -y chromium fonts-noto-color-emoji)) || echo "chromium not installed: the browser test will be skipped"; }

demo: $(STAMP)
	$(PY) -m modules world --playlists $(DEMO_PLAYLISTS) --seed $(DEMO_SEED) --out $(DEMO_WORLD)
	$(PY) -m modules stats $(DEMO_WORLD)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Heavier checks (marked `slow`) as well as the default suite.
test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check modules tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
