# diffusion notes — the two commands a newcomer needs: `make book` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
JB := $(VENV)/bin/jupyter-book
STAMP := $(VENV)/.installed
PORT ?= 8000
# The notebooks' nets are small: one intra-op thread is faster than two on a 2-core machine.
NB_THREADS ?= 1
# Test workers (pytest-xdist): one per core by default; JOBS=1 runs everything in series.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
XDIST := -n $(JOBS) --dist loadfile
# the slowest tests of each stage, printed in the log (benchmarks/suite_time.py reads the totals)
SLOWEST := --durations=8

.PHONY: help venv book leaderboard controls test unit notebooks-test notebooks-untrained book-test site-test pdf proofs tables tables-check notebooks serve browser-deps bench clean

help:
	@echo "make book       build the HTML site into _build/html (creates .venv on first use)"
	@echo "make test       the whole suite: unit tests, proofs, bibliography, table drift, notebooks (quick), book build"
	@echo "make notebooks  re-execute notebooks/ in the full profile and store their outputs"
	@echo "make proofs     verify every derivation"
	@echo "make tables     regenerate every generated table"
	@echo "make serve      serve _build/html on http://127.0.0.1:$(PORT)"
	@echo "make pdf        the whole book as one PDF (_build/pdf/diffusion-notes.pdf)"
	@echo "make leaderboard  the notes' table, measured (full: about 45-50 CPU min, resumable; LEADERBOARD_PROFILE=quick for a smoke run)"
	@echo "make bench      benchmarks -> benchmarks/RESULTS.md and the sampler figures (BENCH_ARGS=--quick)"
	@echo "make controls  every lab re-run with training disabled: the untrained control of each claim"
	@echo "make notebooks-untrained  every notebook with training disabled must fail its checks"

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' >/dev/null 2>&1 || \
		{ echo "error: Python 3.10 or newer is needed (found: $$($(PYTHON) --version 2>&1 | head -n1 || true)); set PYTHON=/path/to/python3.x"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PIP) install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (diffnotes)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)

# The pages are first executed in parallel into the build's jupyter cache (scripts/prebuild_book.py);
# the build then finds them cached and only renders.
book: $(STAMP)
	$(PY) scripts/prebuild_book.py
	$(JB) build . -W -n --keep-going
	@echo "open $(CURDIR)/_build/html/index.html  (or: make serve)"

unit: $(STAMP)
	DIFFNOTES_PROFILE=quick OMP_NUM_THREADS=1 $(PY) -m pytest -q $(XDIST) $(SLOWEST) tests --ignore=tests/site --ignore=tests/notebooks_untrained

# The untrained control of every claim: each lab run in the full profile with training disabled,
# its claims recorded to notebooks/results/untrained/ (then: make tables).
controls: $(STAMP)
	$(PY) scripts/measure_controls.py --profile full --jobs $(JOBS)

# Every lab notebook must fail its checks when training is disabled (DIFFNOTES_TRAIN_STEPS=0)
# or, for the coding labs that train nothing, when the coder is broken (DIFFNOTES_BROKEN=1).
notebooks-untrained: $(STAMP)
	OMP_NUM_THREADS=$(NB_THREADS) $(PY) -m pytest -q -p no:cacheprovider $(XDIST) $(SLOWEST) tests/notebooks_untrained

# Headless Chromium for the browser tests (Debian packages; needs root or sudo). Where it cannot
# be installed the browser tests skip and say why.
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then echo "chromium: present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
		|| echo "warning: could not install chromium; browser tests will skip"; \
	else echo "warning: chromium not installed and no root apt-get; browser tests will skip"; fi

# Tests over the built site: links, offline assets, and pages in a real browser.
site-test: $(STAMP)
	DIFFNOTES_REQUIRE_SITE=1 $(PY) -m pytest -q -rs tests/site

notebooks-test: $(STAMP)
	@if ls notebooks/*.ipynb >/dev/null 2>&1; then \
		OMP_NUM_THREADS=$(NB_THREADS) DIFFNOTES_PROFILE=quick $(PY) -m pytest -q -p no:cacheprovider $(XDIST) $(SLOWEST) --nbval-lax --nbval-current-env notebooks; \
	else echo "no notebooks yet"; fi

book-test: $(STAMP)
	$(PY) scripts/prebuild_book.py
	$(JB) build . -W -n --keep-going

tables: $(STAMP)
	$(PY) -m diffnotes tables

tables-check: $(STAMP)
	$(PY) -m diffnotes tables --check

proofs: $(STAMP)
	$(PY) -m diffnotes proofs

# Every proof is verified once, by tests/test_proofs.py inside `unit` (`make proofs` prints the
# same verdicts for a reader).
test: $(STAMP)
	$(MAKE) tables-check
	$(MAKE) unit
	$(MAKE) notebooks-test
	$(MAKE) notebooks-untrained
	$(MAKE) book-test
	$(MAKE) site-test

# MPLBACKEND is unset so that the kernels use the inline backend and figures are stored.
notebooks: $(STAMP)
	for nb in notebooks/*.ipynb; do \
		echo "== $$nb"; \
		env -u MPLBACKEND OMP_NUM_THREADS=$(NB_THREADS) DIFFNOTES_PROFILE=full $(VENV)/bin/jupyter execute --inplace \
			--timeout=1200 --kernel_name=python3 "$$nb"; \
	done
	$(PY) -m diffnotes tables

serve:
	@test -f _build/html/index.html || { echo "error: no site yet; run 'make book' first"; exit 1; }
	@echo "serving http://127.0.0.1:$(PORT)/ (Ctrl-C to stop)"
	$(PYTHON) -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

# A PDF of the whole book: single-page HTML printed by headless Chromium (see scripts/build_pdf.py).
pdf: $(STAMP) browser-deps
	$(PY) scripts/build_pdf.py

# Benchmarks -> benchmarks/RESULTS.md and the book's sampler figures (an hour or more of one core);
# `make bench BENCH_ARGS=--quick` is a smoke test that writes under _build/bench-quick/.
# The benchmark-only peers (k-diffusion's sampling module) come from requirements-bench.txt, installed
# without their dependencies (k-diffusion's own list pulls torchvision, CLIP and a newer torch).
bench: $(STAMP)
	$(PIP) install --quiet --disable-pip-version-check --no-deps -r requirements-bench.txt -c constraints.txt
	OMP_NUM_THREADS=1 $(PY) benchmarks/run_all.py $(BENCH_ARGS)

# The notes' table, measured: every generative method on the digits at equal budget over three
# seeds (cached and resumable under _build/leaderboard/); a full run stores
# src/diffnotes/data/leaderboard_full.json, from which `make tables` writes the page's table.
leaderboard: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m diffnotes leaderboard --profile $(or $(LEADERBOARD_PROFILE),full) $(LEADERBOARD_ARGS)

clean:
	rm -rf _build .pytest_cache
