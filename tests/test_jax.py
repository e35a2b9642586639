"""What is JAX's own, beyond the contract (tests/test_conformance.py): sync waits for the latest
call, jit traces again for a new shape, ReLU'(0) as JAX differentiates it, arrays on the GPU."""

import numpy as np
import pytest

from tests.helpers import load_or_skip, tiny_inputs

fw = load_or_skip("jax")  # JAX with its settings (float64) first
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from bench.frameworks import jax as jax_framework  # noqa: E402
from kernels import jax_steps  # noqa: E402


def test_relu_grad_at_zero_is_zero_like_jax_nn_relu():
    x = jnp.array([-1.0, 0.0, 2.0])
    _, pullback = jax.vjp(jax.nn.relu, x)
    np.testing.assert_array_equal(jax_steps.relu_grad(x, jnp.ones_like(x)), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(pullback(jnp.ones_like(x))[0], [0.0, 0.0, 1.0])


def test_sync_waits_for_the_latest_call():
    fn = fw.compile("manual", "jit")
    out = fn(*fw.to_device(tiny_inputs(), "float64", "cpu"))
    assert jax_framework._latest and jax_framework._latest[0] is out
    fw.sync()
    assert not jax_framework._latest and all(a.is_ready() for a in out)
    fw.sync()  # nothing pending: returns at once


def test_jit_traces_again_for_a_new_shape():
    jitted = fw.compile("grad", "jit")
    assert fw.tracing_count(jitted) == 0
    args = fw.to_device(tiny_inputs(n=33), "float64", "cpu")
    fw.trace(jitted, args)
    jitted(*args)
    jitted(*args)
    assert fw.tracing_count(jitted) == 1
    jitted(*fw.to_device(tiny_inputs(n=34), "float64", "cpu"))
    assert fw.tracing_count(jitted) == 2


def test_x64_is_on_and_float32_stays_float32():
    assert fw.info()["x64"] is True
    (a,) = fw.to_device((np.ones(3),), "float32", "cpu")
    assert a.dtype == jnp.float32 and (a * 2.0).dtype == jnp.float32


def test_gpu_arrays_are_committed_to_the_gpu():
    if "gpu" not in fw.devices():
        pytest.skip("no GPU visible to JAX")
    args = fw.to_device(tiny_inputs(), "float32", "gpu")
    assert all(a.devices() == {jax_framework._device("gpu")} for a in args)


BUSY_THREADS = """
import os, sys
from bench.frameworks import jax as jax_framework
fw = jax_framework.Jax()
import jax, jax.numpy as jnp

def cpu_ticks():
    ticks = {}
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks[task] = int(fields[11]) + int(fields[12])   # utime + stime
    return ticks

a = jnp.ones((1500, 1500), jnp.float32)
product = jax.jit(lambda a: (a @ a @ a).sum())
product(a).block_until_ready()
before = cpu_ticks()
for _ in range(12):
    product(a).block_until_ready()
used = {task: ticks - before.get(task, 0) for task, ticks in cpu_ticks().items()}
busy = [task for task, ticks in used.items() if ticks > 0.1 * sum(used.values())]
allowed = {tuple(sorted(os.sched_getaffinity(int(task)))) for task in os.listdir("/proc/self/task")}
print(len(busy), fw.info()["cpu_threads"], allowed == {tuple(sorted(os.sched_getaffinity(0)))})
"""


@pytest.mark.skipif(len(__import__("os").sched_getaffinity(0)) < 2, reason="one CPU: nothing to limit")
def test_one_thread_asked_runs_a_jit_product_on_one_thread_and_leaves_every_cpu_allowed():
    """JAX reads no thread setting: BENCH_JAX_THREADS (what `--threads 1` sets) sizes XLA's CPU pool
    as the client starts, and gives the process its CPUs back afterwards (unpinned, as the other
    frameworks' one thread is). Without it the same product keeps two or more threads busy here."""
    import os
    import subprocess
    import sys

    env = {**os.environ, jax_framework.THREADS_VAR: "1"}
    out = subprocess.run(
        [sys.executable, "-c", BUSY_THREADS],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=str(__import__("bench").REPO),
    )
    assert out.stdout.split() == ["1", "1", "True"]
