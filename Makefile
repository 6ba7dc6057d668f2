# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_WORLD ?= data/world
DEMO_PLAYLISTS ?= 3000
DEMO_SEED ?= 0
DEMO_MODEL ?= models/world
DEMO_PORT ?= 8501
# the demo answers this machine only; DEMO_ADDRESS=0.0.0.0 shows it to the network (it has no login)
DEMO_ADDRESS ?= 127.0.0.1
PYTEST_ARGS ?=

.PHONY: venv demo demo-model test test-all bench bench-small bench-worlds lint clean browser java notebooks serve-load wrk

# The venv is (re)built when a requirements file or pyproject.toml changes; `modules` is installed editable
# (`pip install -e .`), so `import modules` finds this checkout from any folder.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found); set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt -e .
	touch $(STAMP)

venv: $(STAMP)

# Chromium for the end-to-end browser test (Debian's package; never `playwright install`).
browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && (apt-get install -y chromium fonts-noto-color-emoji || (apt-get update && apt-get install -y chromium fonts-noto-color-emoji)) || echo "chromium not installed: the browser test will be skipped"; }

# A Java runtime for the Spark engine (`--engine spark`; Debian's package). The local engine and the demo need none;
# the Spark tests are skipped, with the reason, only where it cannot be installed.
java:
	@command -v java >/dev/null || { command -v apt-get >/dev/null && (apt-get install -y default-jre-headless || (apt-get update && apt-get install -y default-jre-headless)) || echo "java could not be installed: the Spark tests will be skipped"; }

# The sample world (seconds), then the app at once: while no bundle exists its first page trains one in the
# background (about 10 minutes on 2 cores; modules/training_job.py) and shows the progress. `make demo-model`
# trains the bundle in the terminal instead.
$(DEMO_WORLD)/.built: | $(STAMP)
	$(PY) -m modules world --playlists $(DEMO_PLAYLISTS) --seed $(DEMO_SEED) --out $(DEMO_WORLD)
	$(PY) -m modules stats $(DEMO_WORLD)
	touch $@

$(DEMO_MODEL)/manifest.json: $(DEMO_WORLD)/.built
	$(PY) -m modules train --mpd $(DEMO_WORLD) --out $(DEMO_MODEL) --seed $(DEMO_SEED)

demo-model: $(DEMO_MODEL)/manifest.json

demo: $(STAMP) $(DEMO_WORLD)/.built
	@echo "Starting the demo on http://$(DEMO_ADDRESS):$(DEMO_PORT) (Ctrl-C stops it)"
	@test -f $(DEMO_MODEL)/manifest.json || echo "No bundle at $(DEMO_MODEL) yet: the app's first page trains it (log: $(dir $(DEMO_MODEL)).$(notdir $(DEMO_MODEL)).train.log)"
	PLAYLIST_MODEL=$(DEMO_MODEL) PLAYLIST_TRAIN_DATA=$(DEMO_WORLD) PLAYLIST_TRAIN_SEED=$(DEMO_SEED) \
		PLAYLIST_TRAIN_AUTOSTART=1 $(PY) -m streamlit run streamlit_app/app.py --server.headless true \
		--server.address $(DEMO_ADDRESS) --server.port $(DEMO_PORT) --browser.gatherUsageStats false

test: $(STAMP) java
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Heavier checks (marked `slow`) as well as the default suite.
test-all: $(STAMP) java
	$(PY) -m pytest -q -m "slow or not slow" $(PYTEST_ARGS)

# docs/benchmarks.md: every row on the 3,000-playlist world (about 20 minutes), then the 20,000-playlist world
# (hours on 2 cores). Rows that already have a result file are kept; delete the file to rerun one.
bench-small: $(STAMP)
	$(PY) -m benchmarks.quality --playlists 3000 --per-category 30 --suite
	$(PY) -m benchmarks.significance --playlists 3000 --per-category 30

bench: bench-small
	$(PY) -m benchmarks.quality --playlists 20000 --per-category 100 --suite
	$(PY) -m benchmarks.significance --playlists 20000 --per-category 100

# The replication: the same suite on two more 20,000-playlist worlds (seeds 1 and 2, about 40 minutes each), then
# the three worlds' test playlists pooled (docs/benchmarks.md, "What the tables say").
bench-worlds: bench
	$(PY) -m benchmarks.quality --playlists 20000 --per-category 100 --seed 1 --suite
	$(PY) -m benchmarks.significance --playlists 20000 --per-category 100 --seed 1
	$(PY) -m benchmarks.quality --playlists 20000 --per-category 100 --seed 2 --suite
	$(PY) -m benchmarks.significance --playlists 20000 --per-category 100 --seed 2
	$(PY) -m benchmarks.significance --playlists 20000 --per-category 100 --seed 0 1 2

# Regenerate notebooks/*.ipynb (committed without outputs) from notebooks/build_notebooks.py.
notebooks: $(STAMP)
	$(PY) -m notebooks.build_notebooks

# 32 concurrent clients for 60 s against the service on the demo bundle (loopback only).
# The load test's client is wrk (Debian's package), so the load generator takes little of the two cores.
wrk:
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && (apt-get install -y wrk || (apt-get update && apt-get install -y wrk)) || { echo "wrk could not be installed: run python -m benchmarks.serve_load with --client python"; exit 1; }; }

serve-load: $(STAMP) $(DEMO_MODEL)/manifest.json wrk
	$(PY) -m benchmarks.serve_load --model $(DEMO_MODEL) --clients 32 --seconds 60 --client wrk \
		--out benchmarks/results/serve-load.json --append

lint: $(STAMP)
	$(PY) -m ruff check modules tests benchmarks streamlit_app notebooks

clean:
	rm -rf $(VENV) .pytest_cache
