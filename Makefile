# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing, installs the CPU build of torch first (so nothing
# else pulls a CUDA build), then lmlab with the extras CI needs, then runs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
EXTRAS := peers,fast,zh,plot,tb,eval,dev,elmo,ner-data
STAMP  := $(VENV)/.installed
TORCH  := torch==2.13.0

.PHONY: demo test setup lint check clean bench test-core aot

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@# optional system data: WordNet 3.0 for the WordNet-tree softmax (its test skips without it)
	@test -d /usr/share/wordnet || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq && apt-get install -y -qq wordnet-base) >/dev/null 2>&1; } || \
		echo "note: wordnet-base not installed; the WordNet-tree softmax test will skip"
	@# optional system data: the KJV and the World English Bible (SWORD modules) for the verse-modernisation task
	@test -d /usr/share/sword/modules/texts/ztext/engWEB2015eb || { command -v apt-get >/dev/null && \
		[ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq sword-text-kjv sword-text-web) \
		>/dev/null 2>&1; } || echo "note: sword-text-kjv/sword-text-web not installed; the Bible tests will skip"
	@# optional: a headless browser for the report page's rendering test (tests/report/test_browser.py)
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1; } || \
		echo "note: chromium not installed; the report page's browser test will skip"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[$(EXTRAS)]" $(TORCH)
	@# the n-gram query kernels compiled ahead of time by numba (~30 s; without them they compile just in time)
	@$(PY) -m lmlab.aot || echo "note: lmlab.aot failed; n-gram kernels will be compiled just in time"
	@touch $(STAMP)

aot: $(STAMP)  # rebuild the ahead-of-time kernels after editing one (a stale module is not used)
	$(PY) -m lmlab.aot

demo: $(STAMP)
	$(VENV)/bin/lmlab demo $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -n 2 -q $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples

# what CI runs: lint, then the README's test command
check: lint test

# the core without the extras: a second venv with only torch and .[dev] (no peers, fast, zh,
# plot, tb, eval); every test that needs an optional package must skip there, never fail
CORE_VENV  := .venv-core
CORE_PY    := $(CORE_VENV)/bin/python
CORE_STAMP := $(CORE_VENV)/.installed

$(CORE_STAMP): pyproject.toml Makefile
	@test -x $(CORE_PY) || $(PYTHON) -m venv $(CORE_VENV)
	$(CORE_PY) -m pip install -q --upgrade pip
	$(CORE_PY) -m pip install -q $(TORCH)
	$(CORE_PY) -m pip install -q -e ".[dev]" $(TORCH)
	@touch $(CORE_STAMP)

test-core: $(CORE_STAMP)
	$(CORE_PY) -m pytest -n 2 -q $(ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(CORE_VENV) .pytest_cache build *.egg-info src/lmlab/_aot_kernels*
