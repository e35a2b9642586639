# Two commands do all the set-up on a fresh machine: `make bench` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ARGS ?=

.PHONY: install bench bench-gpu test fuzz gate clean

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(INSTALLED)

bench: install  ## the default suite: every step x backend on every device; results/<run-id>/
	$(PY) -m bench run $(ARGS)

# The GPU run, on a CUDA machine that has PyTorch and JAX but maybe no TensorFlow and no network: no
# venv, no install; python3 as it is. First the probe (ceilings per precision, launch overhead, cold
# vs warm L2, NVML telemetry: OUT/probe.json), then a sweep over n on the GPU (it includes the default
# n), both frameworks in one process so their cases are timed in the same interleaved rounds, then
# the default suite on the CPU beside it (--resume: the same run, so one folder); records (with the
# measured ceilings and peak memory),
# report and plots all land in OUT, and OUT.tar.gz holds the whole folder (one file to copy off the
# machine). Every step runs even if an earlier one failed; the exit status is the first failure's.
# Rehearse it on a CPU with GPU_DEVICE=cpu GPU_SWEEP='1000,784,50 5000,784,50' (the probe then says
# there is no CUDA device and fails: that status is kept).
GPU_FRAMEWORKS ?= torch jax
GPU_DEVICE ?= gpu
GPU_SWEEP ?= 1000,784,50 10000,784,50 50000,784,50 1000000,784,50

bench-gpu:  ## make bench-gpu OUT=DIR
	@test -n "$(OUT)" || { echo "usage: make bench-gpu OUT=DIR" >&2; exit 2; }
	status=0; keep() { s=$$?; [ $$status -ne 0 ] || status=$$s; }; mkdir -p $(OUT); \
	$(PYTHON) -m bench.probe --out $(OUT)/probe.json || keep; \
	$(PYTHON) -m bench run --framework $(GPU_FRAMEWORKS) --device $(GPU_DEVICE) --size $(GPU_SWEEP) \
		--out $(OUT) $(ARGS) || keep; \
	$(PYTHON) -m bench run --framework $(GPU_FRAMEWORKS) --device cpu --out $(OUT) --resume $(ARGS) || keep; \
	$(PYTHON) -m bench report $(OUT) || keep; \
	tar czf $(OUT).tar.gz -C $(dir $(abspath $(OUT))) $(notdir $(abspath $(OUT))) || keep; \
	exit $$status

test: install
	$(PY) -m pytest -q $(ARGS)

# Property-based fuzzing of every entry point that reads a file or a revision, many more examples
# than `make test` runs (tests/test_fuzz.py): FUZZ_EXAMPLES a test, FUZZ_REPORTS whole reports.
FUZZ_EXAMPLES ?= 2500
FUZZ_REPORTS ?= 25

fuzz: install
	HYPOTHESIS_PROFILE=fuzz BENCH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) BENCH_FUZZ_REPORTS=$(FUZZ_REPORTS) \
		$(PY) -m pytest -q -p no:cacheprovider --hypothesis-show-statistics tests/test_fuzz.py $(ARGS)

# The paired regression gate: BASE's harness (a temporary git worktree) and this working tree, run
# alternately in separate processes at a small size; exit 1 only on a regressed verdict, 0 when
# there is nothing to compare (no parent commit, or no harness in it). See README, "The gate".
BASE ?= HEAD~1

gate: install
	$(PY) -m bench gate --base $(BASE) $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
