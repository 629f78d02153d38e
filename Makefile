# Two commands do everything on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench fuzz crash simulate-long clean

$(STAMP): pyproject.toml scripts/bootstrap
	bash scripts/bootstrap
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/choir serve

test: $(STAMP)
	bash scripts/test

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench

# The long forms of what the test run checks briefly: >= 100,000 fuzzed /ws frames (batches of
# up to 6; 108,580 measured), up to 7,000 fuzzed requests per REST operation (63,508 measured: hypothesis
# runs out of distinct inputs for the small operations first), and 100 SIGKILL cycles of a real server.
fuzz: $(STAMP)
	CHOIR_FUZZ_EXAMPLES=30000 $(VENV)/bin/pytest -q -s --timeout=0 tests/realtime/test_ws_fuzz.py
	CHOIR_REST_FUZZ_EXAMPLES=7000 $(VENV)/bin/pytest -q -s --timeout=0 tests/http/test_rest_fuzz.py

crash: $(STAMP)
	$(PY) -m bench.bench_crash --cycles 100

# 10^6 simulated steps: 20 seeds of 50,000, every invariant checked after every step.
simulate-long: $(STAMP)
	$(VENV)/bin/choir simulate --seeds 20 --steps 50000

clean:
	rm -rf $(VENV) choir-data
