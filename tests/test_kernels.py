"""Every TensorFlow step under every backend against the float64 reference, plus finite differences."""
import numpy as np
import pytest

from kernels import reference
from kernels.reference import OUTPUTS

tf_backend = pytest.importorskip("bench.backend_tf", reason="TensorFlow is not installed")
tf = tf_backend.tf
from kernels import layers  # noqa: E402  (TensorFlow is present past this point)
from tests.helpers import tiny_inputs  # noqa: E402


def run_step(step, backend, inputs, dtype="float64"):
    args = tf_backend.to_device(inputs, dtype, "cpu")
    fn = tf_backend.BACKENDS[backend](tf_backend.STEPS[step])
    return dict(zip(OUTPUTS, (t.numpy() for t in fn(*args))))


@pytest.mark.parametrize("backend", list(tf_backend.BACKENDS))
@pytest.mark.parametrize("step", list(tf_backend.STEPS))
def test_every_step_matches_reference_in_float64(step, backend):
    inputs = tiny_inputs()
    got = run_step(step, backend, inputs)
    ref = reference.forward_backward(*inputs)
    for name in OUTPUTS:
        assert np.shape(got[name]) == np.shape(ref[name]), name
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("backend", list(tf_backend.BACKENDS))
def test_manual_tape_module_agree_in_float64(backend):
    inputs = tiny_inputs(n=300, m=40, nh=9, seed=3)
    outs = {step: run_step(step, backend, inputs) for step in ("manual", "tape", "module")}
    for name in OUTPUTS:
        for step in ("tape", "module"):
            np.testing.assert_allclose(outs[step][name], outs["manual"][name], rtol=1e-10, atol=1e-13,
                                       err_msg=f"{step} vs manual: {name}")


def numeric_grads(inputs, eps=1e-6):
    """Central differences of the reference loss with respect to every input but y."""
    grads = {}
    for name, i in zip(("d_x", "d_w1", "d_b1", "d_w2", "d_b2"), (0, 2, 3, 4, 5)):
        g = np.zeros_like(inputs[i])
        for idx in np.ndindex(g.shape):
            for sign in (1, -1):
                args = [a.copy() for a in inputs]
                args[i][idx] += sign * eps
                g[idx] += sign * reference.forward_backward(*args)["loss"] / (2 * eps)
        grads[name] = g
    return grads


def test_reference_matches_finite_differences():
    inputs = tiny_inputs(n=6, m=4, nh=3, seed=5)
    analytic = reference.forward_backward(*inputs)
    for name, g in numeric_grads(inputs).items():
        np.testing.assert_allclose(analytic[name], g, rtol=1e-6, atol=1e-8, err_msg=name)


def test_manual_step_matches_finite_differences():
    inputs = tiny_inputs(n=6, m=4, nh=3, seed=6)
    got = run_step("manual", "eager", inputs)
    for name, g in numeric_grads(inputs).items():
        np.testing.assert_allclose(got[name], g, rtol=1e-6, atol=1e-8, err_msg=name)


def test_relu_grad_at_zero_is_zero_like_tf_nn_relu():
    x = tf.constant([-1.0, 0.0, 2.0], tf.float64)
    dy = tf.ones_like(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.nn.relu(x)
    np.testing.assert_array_equal(layers.relu_grad(x, dy).numpy(), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(tape.gradient(out, x, dy).numpy(), [0.0, 0.0, 1.0])


def test_module_step_keeps_no_state_between_calls():
    """Two calls of one compiled module step on different inputs give each input's own answer."""
    a, b = tiny_inputs(seed=7), tiny_inputs(seed=8)
    for backend in tf_backend.BACKENDS:
        fn = tf_backend.BACKENDS[backend](tf_backend.STEPS["module"])
        for inputs in (a, b, a):
            got = fn(*tf_backend.to_device(inputs, "float64", "cpu"))
            np.testing.assert_allclose(got[2].numpy(), reference.forward_backward(*inputs)["d_w1"], rtol=1e-10)


def test_float32_steps_pass_the_check():
    inputs = tiny_inputs(n=500, m=30, nh=8, dtype=np.float32)
    for backend in tf_backend.BACKENDS:
        args = tf_backend.to_device(inputs, "float32", "cpu")
        got = run_step("manual", backend, inputs, "float32")
        h_pre = tf_backend.hidden_pre(backend)(args[0], args[2], args[3]).numpy()
        result = reference.check(got, inputs, "float32", h_pre)
        assert result.ok, result.problem
        assert 0 < result.max_rel_err < 1e-5
