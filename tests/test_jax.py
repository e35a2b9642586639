"""Every JAX step under every backend against the float64 reference, and the adapter in the grid
runner; GPU cases skip with a reason where no GPU is visible to JAX."""
import numpy as np
import pytest

from bench import run
from kernels import reference
from kernels.reference import OUTPUTS

pytest.importorskip("jax", reason="JAX is not installed (pip install -e '.[jax]')")
from bench import backend_jax as fw  # noqa: E402  (JAX is present past this point)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from kernels import jax_steps  # noqa: E402
from tests.helpers import CONFIG, COMMON, tiny_inputs  # noqa: E402


def run_step(step, backend, inputs, dtype="float64", device="cpu"):
    args = fw.to_device(inputs, dtype, device)
    fn = fw.BACKENDS[backend](fw.STEPS[step])
    with fw.placement(device):
        out = fn(*args)
        fw.sync()
    return dict(zip(OUTPUTS, (fw.to_numpy(t) for t in out)))


def assert_matches_reference(got, inputs, rtol=1e-10):
    ref = reference.forward_backward(*inputs)
    for name in OUTPUTS:
        assert np.shape(got[name]) == np.shape(ref[name]), name
        np.testing.assert_allclose(got[name], ref[name], rtol=rtol, atol=1e-12, err_msg=name)


def require_gpu():
    if "gpu" not in fw.devices():
        pytest.skip("no GPU visible to JAX")


@pytest.mark.parametrize("backend", list(fw.BACKENDS))
@pytest.mark.parametrize("step", list(fw.STEPS))
def test_every_step_matches_reference_in_float64(step, backend):
    inputs = tiny_inputs()
    got = run_step(step, backend, inputs)
    assert got["d_x"].dtype == np.float64
    assert_matches_reference(got, inputs)


@pytest.mark.parametrize("backend", list(fw.BACKENDS))
def test_manual_and_grad_agree_in_float64(backend):
    inputs = tiny_inputs(n=300, m=40, nh=9, seed=3)
    outs = {step: run_step(step, backend, inputs) for step in fw.STEPS}
    for name in OUTPUTS:
        np.testing.assert_allclose(outs["grad"][name], outs["manual"][name], rtol=1e-10, atol=1e-13, err_msg=name)


def test_relu_grad_at_zero_is_zero_like_jax_nn_relu():
    x = jnp.array([-1.0, 0.0, 2.0])
    _, pullback = jax.vjp(jax.nn.relu, x)
    np.testing.assert_array_equal(jax_steps.relu_grad(x, jnp.ones_like(x)), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(pullback(jnp.ones_like(x))[0], [0.0, 0.0, 1.0])


def test_float32_steps_stay_float32_and_pass_the_check():
    inputs = tiny_inputs(n=500, m=30, nh=8, dtype=np.float32)
    args = fw.to_device(inputs, "float32", "cpu")
    for backend in fw.BACKENDS:
        h_pre = fw.to_numpy(fw.hidden_pre(backend)(args[0], args[2], args[3]))
        for step in fw.STEPS:
            got = run_step(step, backend, inputs, "float32")
            assert all(np.asarray(got[name]).dtype == np.float32 for name in OUTPUTS), (step, backend)
            result = reference.check(got, inputs, "float32", h_pre)
            assert result.ok, result.problem
            assert 0 < result.max_rel_err < 1e-5


def test_sync_waits_for_the_latest_call():
    inputs = tiny_inputs()
    fn = fw.BACKENDS["jit"](fw.STEPS["manual"])
    out = fn(*fw.to_device(inputs, "float64", "cpu"))
    assert fw._latest and fw._latest[0] is out
    fw.sync()
    assert not fw._latest and all(a.is_ready() for a in out)
    fw.sync()   # nothing pending: returns at once


def test_tracing_count_and_trace():
    inputs = tiny_inputs(n=33)
    args = fw.to_device(inputs, "float64", "cpu")
    eager = fw.BACKENDS["eager"](fw.STEPS["grad"])
    assert fw.tracing_count(eager) is None
    fw.trace(eager, args)   # a no-op
    jitted = fw.BACKENDS["jit"](fw.STEPS["grad"])
    assert fw.tracing_count(jitted) == 0
    fw.trace(jitted, args)
    jitted(*args)
    jitted(*args)
    assert fw.tracing_count(jitted) == 1
    jitted(*fw.to_device(tiny_inputs(n=34), "float64", "cpu"))   # a new shape traces again
    assert fw.tracing_count(jitted) == 2


def case_inputs(n=300, m=20, nh=5, dtype="float32", device="cpu"):
    rng = np.random.default_rng(0)
    x = rng.random((n, m), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.float32)
    inputs = tuple(a.astype(dtype) for a in (x, y, *reference.init_params(m, nh, 0)))
    return inputs, fw.to_device(inputs, dtype, device)


@pytest.mark.parametrize("backend", list(fw.BACKENDS))
@pytest.mark.parametrize("step", list(fw.STEPS))
def test_run_case_checks_then_times(step, backend):
    inputs, args = case_inputs()
    rec = run.run_case(fw, "cpu", step, backend, inputs, args, CONFIG, COMMON)
    assert rec.status == "ok", rec.error
    assert rec.framework == "jax" and len(rec.samples_s) == 3 and rec.first_call_s > 0
    assert rec.max_rel_err < 1e-5 and set(rec.rel_errs) == set(OUTPUTS)
    assert rec.tracing_count == (None if backend == "eager" else 1)
    assert (rec.trace_s is None) == (backend == "eager") and rec.retraced in (None, False)


def test_adapter_facts_on_cpu():
    assert "cpu" in fw.devices() and fw.peak_bytes("cpu") is None
    fw.set_tf32(False)
    facts = fw.info()
    assert facts["version"] == jax.__version__ and facts["x64"] is True and facts["tf32"] is False
    a, b = fw.to_device((np.eye(3), np.ones((3, 3))), "float32", "cpu")
    np.testing.assert_array_equal(fw.to_numpy(fw.gemm(a, b)), np.ones((3, 3)))
    np.testing.assert_array_equal(fw.to_numpy(fw.copy(b)), 2 * np.ones((3, 3)))
    fw.sync()


@pytest.mark.parametrize("backend", list(fw.BACKENDS))
@pytest.mark.parametrize("step", list(fw.STEPS))
def test_gpu_every_step_matches_reference_in_float64(step, backend):
    require_gpu()
    inputs = tiny_inputs()
    got = run_step(step, backend, inputs, device="gpu")
    assert_matches_reference(got, inputs)


@pytest.mark.parametrize("backend", list(fw.BACKENDS))
def test_gpu_run_case_with_tf32_off_passes(backend):
    require_gpu()
    fw.set_tf32(False)
    inputs, args = case_inputs(n=4000, m=784, nh=50, device="gpu")
    assert all(a.devices() == {fw._device("gpu")} for a in args)
    for step in fw.STEPS:
        rec = run.run_case(fw, "gpu", step, backend, inputs, args, CONFIG, COMMON)
        assert rec.status == "ok", f"{step}: {rec.error}"
        assert rec.max_rel_err < 1e-5
