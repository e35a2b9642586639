# Two commands do all the set-up on a fresh machine: `make bench` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ARGS ?=

.PHONY: install bench bench-gpu test docs readme format fuzz gate clean

# uv installs in seconds what pip takes a minute for; pip is the fallback where uv cannot run.
$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv \
		&& $(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e '.[test]' \
		|| $(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(INSTALLED)

bench: install  ## the default suite: every step x backend on every device; results/<run-id>/
	$(PY) -m bench run $(ARGS)

# The GPU run, on a CUDA machine that has PyTorch and JAX but maybe no TensorFlow and no network: no
# venv, no install; python3 as it is, every framework importable there (GPU_FRAMEWORKS to choose).
# 1. the probe: ceilings per precision, launch overhead, cold vs warm L2, NVML telemetry (OUT/probe.json);
# 2. the sweep: the manual step under every backend at n = 1e3 .. 1e6, float32, warm (the launch-bound
#    end and the % of peak at 1e6);
# 3. precisions: TF32 and bfloat16 beside it at the sweep's ends;
# 4. cold L2 at the small sizes, where the data fits in L2 and flushing it matters;
# 5. the data-parallel engines at R=1 on the one GPU against the single-device case (OUT/scale/,
#    its own report; GPU_SCALE= leaves it out);
# 6. the report, and OUT.tar.gz holding the whole folder (one file to copy off the machine).
# Steps 2-4 are one run (--resume: one run id, one folder), each case checked against float64
# first and timed with CUDA events where the framework has them, beside the host clock. Every step
# runs even if an earlier one failed; the exit status is the first failure's. GPU_STEPS=all (or a
# list) for every step; GPU_CPU=1 adds the default suite on the machine's CPU. Rehearse it on a CPU
# with GPU_DEVICE=cpu GPU_SWEEP='1000,784,50 5000,784,50' (the probe then says no framework sees a
# gpu device and fails: that status is kept).
GPU_FRAMEWORKS ?=
GPU_DEVICE ?= gpu
GPU_STEPS ?= manual
GPU_SWEEP ?= 1000,784,50 10000,784,50 100000,784,50 1000000,784,50
GPU_ENDS ?= $(firstword $(GPU_SWEEP)) $(lastword $(GPU_SWEEP))
GPU_COLD ?= $(wordlist 1,2,$(GPU_SWEEP))
GPU_CPU ?=
GPU_SCALE ?= 100000,784,50
GPU_RUN = $(PYTHON) -m bench run $(if $(GPU_FRAMEWORKS),--framework $(GPU_FRAMEWORKS)) \
	$(if $(filter all,$(GPU_STEPS)),,--step $(GPU_STEPS)) --out $(OUT) --resume $(ARGS)

bench-gpu:  ## make bench-gpu OUT=DIR
	@test -n "$(OUT)" || { echo "usage: make bench-gpu OUT=DIR" >&2; exit 2; }
	status=0; keep() { s=$$?; [ $$status -ne 0 ] || status=$$s; }; mkdir -p $(OUT); \
	$(PYTHON) -m bench.probe --out $(OUT)/probe.json || keep; \
	$(GPU_RUN) --device $(GPU_DEVICE) --size $(GPU_SWEEP) || keep; \
	$(GPU_RUN) --device $(GPU_DEVICE) --size $(GPU_ENDS) --dtype float32 bfloat16 --tf32 off on || keep; \
	$(GPU_RUN) --device $(GPU_DEVICE) --size $(GPU_COLD) --cache cold || keep; \
	$(if $(GPU_SCALE),$(PYTHON) -m bench scale --device $(GPU_DEVICE) --replicas 1 --scaling strong \
		--size $(GPU_SCALE) --out $(OUT)/scale --resume || keep;) \
	$(if $(GPU_CPU),$(PYTHON) -m bench run $(if $(GPU_FRAMEWORKS),--framework $(GPU_FRAMEWORKS)) --device cpu \
		--out $(OUT) --resume $(ARGS) || keep;) \
	$(PYTHON) -m bench report $(OUT) || keep; \
	tar czf $(OUT).tar.gz -C $(dir $(abspath $(OUT))) $(notdir $(abspath $(OUT))) || keep; \
	exit $$status

# Every test, lint (ruff) and types (mypy) among them, in as many worker processes as the machine
# has cores (pytest-xdist); a test whose framework, browser or database is missing skips, saying
# why. ARGS="-n 0" runs them in this process, one by one.
# The harness's bytecode first: where PYTHONDONTWRITEBYTECODE is set (as on this project's CI
# machines) every process the tests start would otherwise compile what it imports of bench/ again.
test: install
	$(PY) -m compileall -q bench kernels >/dev/null
	$(PY) -m pytest -q -n auto --dist worksteal $(ARGS)

# The README's picture and sample table, from the committed example run (make test checks they match).
readme: install
	$(PY) -m bench report results/examples/cpu
	$(PY) docs/_ext/bench_docs.py

# The documentation site, built strictly: a broken link, anchor or page is an error (make test builds it too).
docs: install
	$(PY) -m sphinx -W --keep-going -n -q -b html docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

# ruff's formatter over the code and the tests (make test checks it is applied).
format: install
	$(PY) -m ruff format bench kernels tests
	$(PY) -m ruff check --fix bench kernels tests

# Property-based fuzzing of every entry point that reads a file or a revision, many more examples
# than `make test` runs (tests/test_fuzz.py): FUZZ_EXAMPLES a test, FUZZ_REPORTS whole reports.
FUZZ_EXAMPLES ?= 2500
FUZZ_REPORTS ?= 25

fuzz: install
	HYPOTHESIS_PROFILE=fuzz BENCH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) BENCH_FUZZ_REPORTS=$(FUZZ_REPORTS) \
		$(PY) -m pytest -q -p no:cacheprovider --hypothesis-show-statistics tests/test_fuzz.py $(ARGS)

# The paired regression gate: BASE (a temporary git worktree) against this working tree, both sides'
# steps in one process when only kernels/ changed, else each side's harness in its own processes,
# alternately; exit 1 on a regressed verdict or a case the candidate broke, 0 when there is nothing
# to compare (no parent commit, no harness in it, only tests, text and stored results changed). See docs/ci-gate.md.
BASE ?= HEAD~1

gate: install
	$(PY) -m bench gate --base $(BASE) $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
