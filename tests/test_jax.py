"""What is JAX's own, beyond the contract (tests/test_conformance.py): sync waits for the latest
call, jit traces again for a new shape, ReLU'(0) as JAX differentiates it, arrays on the GPU."""
import numpy as np
import pytest

from tests.helpers import load_or_skip, tiny_inputs

fw = load_or_skip("jax")   # JAX with its settings (float64) first
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
    fw.sync()   # nothing pending: returns at once


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
