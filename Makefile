# `make run` and `make test` do all the set-up on a fresh machine (README).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-fast bench clean

# requirements-bench.txt includes the dev and runtime sets (plus TRL for bench/vs_trl.py),
# so the benches' short modes run with every test and cannot rot.
$(STAMP): requirements.txt requirements-dev.txt requirements-bench.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements-bench.txt
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/streamlit run app.py

# Every test, browser flows included (they skip with a reason when Chromium is missing).
test: install
	$(BIN)/python -m pytest

# The quick loop while coding: no browser, no slow learning tests.
test-fast: install
	$(BIN)/python -m pytest -m "not browser and not slow"

clean:
	rm -rf $(VENV) .pytest_cache
