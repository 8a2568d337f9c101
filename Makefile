# journeystream — two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test unit lint format typecheck bench million hitrate kpibench venv browser promtool clean soak

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/journeystream demo

# the soak-only scenarios (marker `soak`) are left to `make soak`
test: $(STAMP) lint browser promtool
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not soak"

# the dashboard test drives Debian's chromium (headless); installed when missing and root can,
# else the dashboard test is skipped with the same message
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the dashboard test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || \
	      echo "chromium could not be installed: the dashboard test will be skipped"; \
	  else \
	    echo "chromium not found and no root/apt-get to install it (Debian package chromium):" \
	      "the dashboard test will be skipped"; \
	  fi

# the alert-rule tests run promtool, from Debian's `prometheus` package (no recommends; on a
# systemd host the package also enables its server); installed when missing and root can,
# else the tests skip
promtool:
	@command -v promtool >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's prometheus package for promtool (alert rule tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends prometheus >/dev/null || \
	      echo "promtool could not be installed: the alert rule tests will be skipped"; \
	  else \
	    echo "promtool not found and no root/apt-get to install it (Debian package prometheus):" \
	      "the alert rule tests will be skipped"; \
	  fi

# the reliability scenarios RUNS times (default 10) and the process replays: figures per
# scenario, the "Soak" section of RELIABILITY.md; exit status 1 when any run failed
RUNS ?= 10
soak: $(STAMP)
	$(BIN)/python -m tests.reliability.soak --runs $(RUNS)

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.run --output BENCHMARKS.md

# one worker, 1M new customers: peak RSS, state size, local restart, restore from the changelog
million: $(STAMP)
	$(BIN)/python -m bench.million --customers 1000000 --update BENCHMARKS.md

hitrate: $(STAMP)
	$(BIN)/python -m bench.hitrate --update BENCHMARKS.md

# /kpis latency (a month of daily figures) at 100k customers: in one process (with the views'
# count and write cost), then through a worker's web route on the embedded broker
kpibench: $(STAMP)
	$(BIN)/python -m bench.kpis --customers 100000 --update BENCHMARKS.md
	$(BIN)/python -m bench.kpis_worker --customers 100000 --update BENCHMARKS.md

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache build *.egg-info
