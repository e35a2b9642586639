"""The TensorFlow adapter's device, sync, memory and TF32 plumbing (GPU parts skip without a GPU)."""
import numpy as np
import pytest

tf_backend = pytest.importorskip("bench.backend_tf", reason="TensorFlow is not installed")
tf = tf_backend.tf
HAS_GPU = "gpu" in tf_backend.devices()


def test_registries_and_devices():
    assert set(tf_backend.BACKENDS) == {"eager", "function", "xla"}
    assert set(tf_backend.STEPS) >= {"manual", "tape", "module", "broadcast"}
    assert tf_backend.devices()[0] == "cpu"


def test_to_device_places_and_converts():
    (a,) = tf_backend.to_device((np.arange(6.0).reshape(2, 3),), "float32", "cpu")
    assert a.dtype == tf.float32 and a.device.endswith("CPU:0")
    np.testing.assert_array_equal(tf_backend.to_numpy(a), np.arange(6.0).reshape(2, 3))


def test_cpu_memory_is_left_to_the_process_measurement():
    tf_backend.reset_peak("cpu")
    assert tf_backend.peak_bytes("cpu") is None


def test_tf32_switch_and_info():
    try:
        tf_backend.set_tf32(True)
        assert tf_backend.tf32_enabled() and tf_backend.info()["tf32"] is True
        tf_backend.set_tf32(False)
        assert not tf_backend.tf32_enabled()
    finally:
        tf_backend.set_tf32(False)
    info = tf_backend.info()
    assert info["version"] == tf.__version__ and "cuda_build" in info and "intra_op_threads" in info


def test_tracing_count_and_trace():
    fn = tf_backend.BACKENDS["function"](lambda x: x * 2)
    assert tf_backend.tracing_count(fn) == 0
    tf_backend.trace(fn, (tf.constant([1.0]),))
    fn(tf.constant([3.0]))
    assert tf_backend.tracing_count(fn) == 1   # the call reused the traced graph
    assert tf_backend.tracing_count(lambda x: x) is None


def test_ceiling_kernels_compute():
    a = tf.ones((4, 4))
    np.testing.assert_allclose(tf_backend.gemm(a, a).numpy(), 4 * np.ones((4, 4)))
    np.testing.assert_array_equal(tf_backend.copy(tf.range(5.0)).numpy(), np.arange(5.0))
    tf_backend.sync()


@pytest.mark.skipif(not HAS_GPU, reason="no GPU visible to TensorFlow")
def test_gpu_case_runs_on_the_gpu_with_a_peak():
    from bench import run
    from kernels import reference
    rng = np.random.default_rng(0)
    inputs = (rng.random((500, 30), dtype=np.float32), rng.integers(0, 10, 500).astype(np.float32),
              *reference.init_params(30, 5))
    args = tf_backend.to_device(inputs, "float32", "gpu")
    assert args[0].device.endswith("GPU:0")
    config = run.Config(out=None, warmup=1, min_samples=3, max_samples=3, budget_s=0.0, batch_s=0.0, round_s=0.0)
    rec = run.run_case(tf_backend, "gpu", "manual", "xla", inputs, args, config, dict(run_id="t", ceilings={}, env={}))
    assert rec.status == "ok", rec.error
    assert rec.peak_bytes > 0 and "allocator" in rec.peak_method
