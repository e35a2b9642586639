"""Every default of the harness in one place: the run engine, the gate, the command line's help and
the docs' figures come from here (a test holds the docs to them)."""

from typing import TypedDict


class Sampling(TypedDict):
    """How bench.timing.steady samples: its keyword arguments."""

    warmup: int
    min_samples: int
    max_samples: int
    budget_s: float


# ---- the grid
SIZE = (50_000, 784, 50)  # n, m, nh: the lesson's MNIST training set and hidden width
QUICK_SIZE = (5_000, 784, 50)  # --quick: a smoke test, not a measurement
# The default suite runs these steps at a smaller n to stay within its time budget (the broadcast
# step moves an n x m x nh tensor: 7.8 GB at the default size); records and the report say so.
STEP_N = {"broadcast": 2_000}
DTYPES = ("float32", "float64", "bfloat16", "float16")  # what --dtype accepts
DTYPE = "float32"
SEED = 0

# ---- checking and timing one case
WARMUP = 3  # untimed calls after the checked first call
MIN_SAMPLES = 10
MIN_ROUNDS = 5
MAX_SAMPLES = 1000
TARGET_CI = 0.02  # stop sampling once the median's 95% CI is within +-2%
BUDGET_S = 4.0  # or once a case has spent this long in timed calls
ROUND_S = 0.05  # timed calls per case per round: about this long
BATCH_S = 0.2  # the batched (one sync) measurement: about this long
# The ceilings: the best of a few calls of a float32 GEMM (2048^3 on CPU, 8192^3 on GPU) and a copy
# (128 MiB on CPU, 1 GiB on GPU: far beyond the caches).
CEILING_SAMPLES: Sampling = {"warmup": 2, "min_samples": 5, "max_samples": 20, "budget_s": 0.5}
CEILING_GEMM = {"cpu": 2048, "gpu": 8192}
# The ceiling at a size's own GEMM shapes (kernels/cost.py gemms): the best of a few calls of each.
# A minimum of a few calls is a ceiling; fewer calls than CEILING_SAMPLES keep it under a second.
SHAPE_CEILING_SAMPLES: Sampling = {"warmup": 1, "min_samples": 3, "max_samples": 10, "budget_s": 0.1}
CEILING_COPY_BYTES = {"cpu": 128 << 20, "gpu": 1 << 30}
CHECKPOINT_S = 5.0  # timing samples written at least this often: what a kill -9 can lose
MEMORY_FRACTION = 0.5  # of the device's free memory a case may need, else it is skipped
# --quick, a smoke test: few samples, and ceilings from a 512^3 GEMM and a 16 MiB copy (rough, and
# said so: the report's % of peak then rests on them)
QUICK = {
    "warmup": 1,
    "min_samples": 5,
    "max_samples": 20,
    "budget_s": 0.1,
    "batch_s": 0.02,
    "ceiling_gemm": 512,
    "ceiling_copy_bytes": 16 << 20,
}

# ---- the report
# The noise between separate runs' medians of one case (sd of the log), where this host has not
# measured its own (gate --aa): an unpaired ratio's interval is widened by it, since one run's samples
# say nothing of where the next run's median lands (experiment: run-to-run).
RUN_SD = 0.10

# ---- the regression gate
# A case regressed when its time grew by more than the threshold, its interval clear of half of it
# (bench/compare.py). 5%: the rule needs the ratio itself above 1 + threshold, and the ratio of a
# case exactly 10% slower lands below 1.10 about as often as above, so a 10% threshold would miss a
# 10% slowdown about half the time; the experiment gate-plant measures detection at 5%.
GATE_THRESHOLD = "5%"
# `history check`: a change point whose ratio is over this fails (bench/history/changes.py finds them).
HISTORY_THRESHOLD = "10%"
GATE_PAIRS = 4  # process pairs per gate run
GATE_SIZE = (5_000, 784, 50)
GATE_FRAMEWORK = "tensorflow"
GATE_STEPS = ("manual", "tape")
GATE_BACKENDS = ("eager", "function", "xla")
GATE_BUDGET_S = 0.5  # timed seconds a case in each gate process
# One CPU thread a process: the gate asks whether the code got slower, not how it scales, and a
# one-thread process does not depend on whether another process holds the machine's other cores
# (experiment: one-thread).
GATE_THREADS = 1
# gate --pin: "auto" binds each process's framework workers to its `threads` quietest CPUs (chosen once,
# both sides alike), "off" leaves them to the OS, or CPU numbers. Off: binding showed no gain in the
# spread between processes (experiment: pin).
GATE_PIN = "off"
GATE_PROCESS_TIMEOUT_S = 600
# The one-process gate (a change to kernels/ alone: bench/gate/one_process.py) times every installed
# framework's hand-written and autodiff steps (those of these names it has) under every backend, for
# GATE_CALLS_BUDGET_S x pairs of timed calls a side, one CPU thread a framework (--threads 0: the
# frameworks' default): a step whose threads share a core with another process waits for the
# slower thread, which a paired comparison cannot cancel (experiment: one-thread). At the small size
# only: the users' size (--size ... 50000,784,50) doubles the cases, each call far dearer, beyond CI's
# budget; the counted instructions (GATE_INSTRUCTIONS) judge host-side changes the times cannot.
GATE_CALLS_SIZES = (GATE_SIZE,)
GATE_CALLS_STEPS = ("manual", "tape", "autograd", "grad")
GATE_CALLS_THREADS = 1
GATE_CALLS_BUDGET_S = 0.25
# Untimed calls after a one-process gate's checked first call (WARMUP in a run): both sides get the
# same, its rounds pair them, and the take after each switch drops a call besides; at n=50,000 every
# warm-up call of every case on each side adds to the gate's time.
GATE_CALLS_WARMUP = 1

# ---- data-parallel (python -m bench scale; bench/distributed/)
SCALE_SIZE = (4_000, 784, 50)  # global n: split over 1, 2, ... replicas it stays divisible
SCALE_REPLICAS = (1, 2)
SCALE_WARMUP = 3
SCALE_SAMPLES = 20  # every process times the same number of steps (a collective needs all)
SCALE_TIMEOUT_S = 300  # a case's processes are killed after this: a hung worker never hangs the run

# ---- instructions (run --measure instructions; bench/instructions.py)
# A case's instructions ratio regressed when over this, its range clear of half of it (the rule of
# bench/compare.py): well clear of how far counts of unchanged code move (experiment: instructions-spread).
INSTRUCTIONS_THRESHOLD = "1%"
# The cases a one-process gate also counts under Callgrind, at INSTRUCTIONS_SIZE, both sides in one
# Valgrind process: NumPy's eager steps, the quickest to start under Valgrind; PyTorch's and TensorFlow's
# imports there take CI past its budget (experiment: instructions-spread; instructions-cases adds them).
GATE_INSTRUCTIONS = ("numpy/*/eager/cpu",)
# Small, so a call counts in seconds and host-side work (dispatch, conversions), which does not grow
# with n, is a larger part of it.
INSTRUCTIONS_SIZE = (500, 784, 50)
INSTRUCTIONS_CALLS = 3  # counted calls a case, each its own Callgrind dump
# Uninstrumented calls after the checked first call, before the instrumented warm-up call that is
# dumped and dropped: a call under Valgrind takes seconds, and the counts repeat from the call after
# that one.
INSTRUCTIONS_WARMUP = 0
INSTRUCTIONS_TIMEOUT_S = 1200  # a case's process under Valgrind: import, trace, check, warm-up, calls

# ---- bisect (python -m bench bisect; bench/bisect/)
# Steps a bisection takes at most, the ends and the confirmation included: log2 of a thousand
# commits is ten, and an undecided step is measured once more.
BISECT_MAX_STEPS = 20
