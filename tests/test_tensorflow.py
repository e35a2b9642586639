"""What is TensorFlow's own, beyond the contract (tests/test_conformance.py): placement, the TF32
switch, ReLU'(0) as tf.nn.relu differentiates it, the keras step's variables, the GPU's peak."""

import numpy as np
import pytest

from tests.helpers import load_or_skip, tiny_inputs

fw = load_or_skip("tensorflow")
import tensorflow as tf  # noqa: E402

from kernels import reference, tf_steps  # noqa: E402


def test_the_steps_and_backends():
    assert set(fw.backends) == {"eager", "function", "xla"}
    assert set(fw.steps) >= {"manual", "tape", "module", "broadcast", "keras"}


def test_to_device_places_and_converts():
    (a,) = fw.to_device((np.arange(6.0).reshape(2, 3),), "float32", "cpu")
    assert a.dtype == tf.float32 and a.device.endswith("CPU:0")
    np.testing.assert_array_equal(fw.to_numpy(a), np.arange(6.0).reshape(2, 3))


def test_tf32_switch_and_info():
    try:
        fw.set_tf32(True)
        assert fw.tf32_enabled() and fw.info()["tf32"] is True
        fw.set_tf32(False)
        assert not fw.tf32_enabled()
    finally:
        fw.set_tf32(False)
    info = fw.info()
    assert info["version"] == tf.__version__ and "cuda_build" in info and "intra_op_threads" in info


def test_relu_grad_at_zero_is_zero_like_tf_nn_relu():
    x = tf.constant([-1.0, 0.0, 2.0], tf.float64)
    dy = tf.ones_like(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.nn.relu(x)
    np.testing.assert_array_equal(tf_steps.relu_grad(x, dy).numpy(), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(tape.gradient(out, x, dy).numpy(), [0.0, 0.0, 1.0])


def test_keras_step_differentiates_a_keras_model_through_its_variables():
    """Gradients come from model.trainable_variables (Keras variables, set to each call's weights);
    a new shape under a compiled backend makes its own model, outside the trace."""
    for backend in fw.backends:
        for inputs in (tiny_inputs(n=40, m=6, nh=3, seed=1), tiny_inputs(n=50, m=7, nh=4, seed=2)):
            fn = fw.compile("keras", backend)
            got = [t.numpy() for t in fn(*fw.to_device(inputs, "float64", "cpu"))]
            ref = reference.forward_backward(*inputs)
            for g, name in zip(got, reference.OUTPUTS):
                np.testing.assert_allclose(g, ref[name], rtol=1e-10, atol=1e-12, err_msg=f"{backend}: {name}")
    model = tf_steps._keras_model((7, 4, 1), tf.float64)
    assert [tuple(v.shape) for v in model.trainable_variables] == [(7, 4), (4,), (4, 1), (1,)]
    np.testing.assert_array_equal(np.asarray(model.trainable_variables[0]), tiny_inputs(n=50, m=7, nh=4, seed=2)[2])


@pytest.mark.skipif("gpu" not in fw.devices(), reason="no GPU visible to TensorFlow")
def test_gpu_case_runs_on_the_gpu_with_a_peak():
    from bench import run
    from tests.helpers import COMMON, CONFIG
    from tests.test_conformance import case_inputs

    inputs, args = case_inputs(fw, n=500, m=30, nh=5, device="gpu")
    assert args[0].device.endswith("GPU:0")
    rec = run.run_case(fw, "gpu", "manual", "xla", inputs, args, CONFIG, COMMON)
    assert rec.status == "ok", rec.error
    assert rec.peak_bytes > 0 and "allocator" in rec.peak_method


def test_tensorflow_imports_without_jax_and_leaves_jax_importable():
    """TFLite imports jax where it is installed (a second of every TensorFlow process's start); while
    TensorFlow imports it is blocked, and afterwards it imports as usual."""
    import importlib
    import sys

    from bench.frameworks.tensorflow import without_jax

    saved = {name: mod for name, mod in sys.modules.items() if name == "jax" or name.startswith("jax.")}
    for name in saved:
        del sys.modules[name]
    try:
        with without_jax():
            with pytest.raises(ImportError):
                importlib.import_module("jax")
        assert "jax" not in sys.modules  # nothing left behind that would block a later import
        sys.modules["jax"] = sys  # already imported: left as it is
        with without_jax():
            assert sys.modules["jax"] is sys
    finally:
        sys.modules.pop("jax", None)
        sys.modules.update(saved)


def test_the_gates_mask_probes_are_not_taken_for_a_function_retraced_in_a_loop(tmp_path):
    """The gate's two sides each probe the ReLU mask under function and XLA at two sizes (each probe
    traced twice): TensorFlow, counting retraces per code object, warned of `lin` retraced in a
    loop (5 of its last 9 calls) in every gate's log. The probes compile objects of their own."""
    import logging
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    sides = [fw.with_kernels(repo), fw.with_kernels(repo)]  # fresh modules: a detector of their own
    said = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    tf.get_logger().addHandler(handler)
    try:
        for n in (40, 80):
            x, _, *params = fw.to_device(tiny_inputs(n=n), "float32", "cpu")
            for side in sides:
                for backend in ("function", "xla"):
                    side.mask_probe(backend)(x, *params)
                    side.mask_probe(backend)(x, *params)
    finally:
        tf.get_logger().removeHandler(handler)
    assert [s.mask_probe(b).experimental_get_tracing_count() for s in sides for b in ("function", "xla")] == [2] * 4
    assert not [line for line in said if "retracing" in line], said
