# Set-up is automatic: every target creates .venv (Python >= 3.12) when it is missing.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT ?= bayesgmm-demo

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@set -e; \
	if [ ! -x "$(PY)" ]; then \
	    base=$$(scripts/find_python.sh); \
	    echo "creating $(VENV) with $$base"; \
	    "$$base" -m venv $(VENV); \
	fi; \
	$(PY) -m pip install --quiet --upgrade pip; \
	$(PY) -m pip install --quiet -e ".[test,bench]"; \
	echo "compiling the numba kernels once (bayesgmm precompile), so no first fit waits"; \
	$(VENV)/bin/bayesgmm precompile; \
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bayesgmm demo --out $(DEMO_OUT) --seed 1 --force

# One numba thread per test worker: the workers already fill the cores, and numba's
# OpenMP threads wait for each other at the end of every parallel loop, so with two
# workers of two threads on two cores a loop waits for a thread the other worker has
# descheduled (the heaviest files took 8:14 instead of 2:06). The threaded paths still
# run, one thread at a time; tests/em/test_kernels.py runs its chunks on a pool of four,
# and tests/_numerics/test_threads.py the prange loops on two threads in a subprocess.
test: $(STAMP)
	$(PY) -m ruff check bayesgmm tests examples benchmarks
	NUMBA_NUM_THREADS=1 $(PY) -m pytest -q -n auto --maxprocesses=4 --dist loadfile

lint: $(STAMP)
	$(PY) -m ruff check bayesgmm tests examples benchmarks

bench: $(STAMP)
	$(PY) benchmarks/bench_em.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
