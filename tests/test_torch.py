"""Every PyTorch step under every backend against the float64 reference, and the adapter in the grid
runner; GPU cases skip with a reason where no CUDA GPU is present."""
import numpy as np
import pytest

from bench import run
from kernels import reference
from kernels.reference import OUTPUTS

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install -e '.[torch]')")
from bench import backend_torch as fw  # noqa: E402  (PyTorch is present past this point)
from kernels import torch_steps  # noqa: E402
from tests.helpers import CONFIG, COMMON, tiny_inputs  # noqa: E402


def run_step(step, backend, inputs, dtype="float64", device="cpu"):
    args = fw.to_device(inputs, dtype, device)
    fn = fw.BACKENDS[backend](fw.STEPS[step])
    with fw.placement(device):
        return dict(zip(OUTPUTS, (fw.to_numpy(t) for t in fn(*args))))


def assert_matches_reference(got, inputs, rtol=1e-10):
    ref = reference.forward_backward(*inputs)
    for name in OUTPUTS:
        assert np.shape(got[name]) == np.shape(ref[name]), name
        np.testing.assert_allclose(got[name], ref[name], rtol=rtol, atol=1e-12, err_msg=name)


def require_gpu():
    if "gpu" not in fw.devices():
        pytest.skip("no CUDA GPU")


@pytest.mark.parametrize("step", list(fw.STEPS))
def test_every_step_matches_reference_in_float64_eager(step):
    inputs = tiny_inputs()
    assert_matches_reference(run_step(step, "eager", inputs), inputs)


def test_every_step_matches_reference_in_float64_compiled():
    """torch.compile is slow to compile on CPU: one test compiles every step, once each."""
    inputs = tiny_inputs()
    for step in fw.STEPS:
        fn = fw.BACKENDS["compile"](fw.STEPS[step])
        args = fw.to_device(inputs, "float64", "cpu")
        assert fw.tracing_count(fn) == 0
        got = dict(zip(OUTPUTS, (fw.to_numpy(t) for t in fn(*args))))
        assert_matches_reference(got, inputs)
        # One graph, Tensor.backward() included, where this PyTorch can trace it (2.11 and later).
        whole = step != "autograd" or hasattr(torch._dynamo.config, "trace_autograd_ops")
        assert fw.tracing_count(fn) == (1 if whole else 0), step
        fn(*args)
        assert fw.tracing_count(fn) == (1 if whole else 0), f"{step} recompiled on a second call"


def test_manual_autograd_module_agree_in_float64():
    inputs = tiny_inputs(n=300, m=40, nh=9, seed=3)
    outs = {step: run_step(step, "eager", inputs) for step in fw.STEPS}
    for name in OUTPUTS:
        for step in ("autograd", "module"):
            np.testing.assert_allclose(outs[step][name], outs["manual"][name], rtol=1e-10, atol=1e-13,
                                       err_msg=f"{step} vs manual: {name}")


def test_relu_grad_at_zero_is_zero_like_torch_relu():
    x = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    torch.relu(x).backward(torch.ones_like(x))
    np.testing.assert_array_equal(torch_steps.relu_grad(x.detach(), torch.ones_like(x)).numpy(), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])


def test_autograd_step_does_not_accumulate_or_touch_its_inputs():
    a, b = tiny_inputs(seed=7), tiny_inputs(seed=8)
    args_a, args_b = fw.to_device(a, "float64", "cpu"), fw.to_device(b, "float64", "cpu")
    step = fw.STEPS["autograd"]
    for inputs, args in ((a, args_a), (b, args_b), (a, args_a), (a, args_a)):
        got = dict(zip(OUTPUTS, (fw.to_numpy(t) for t in step(*args))))
        assert_matches_reference(got, inputs)
    assert not any(t.requires_grad or t.grad is not None for t in args_a + args_b)


def test_module_step_keeps_no_state_between_calls():
    a, b = tiny_inputs(seed=7), tiny_inputs(seed=8)
    for inputs in (a, b, a):
        got = fw.STEPS["module"](*fw.to_device(inputs, "float64", "cpu"))
        np.testing.assert_allclose(fw.to_numpy(got[2]), reference.forward_backward(*inputs)["d_w1"], rtol=1e-10)


def test_float32_eager_steps_pass_the_check():
    inputs = tiny_inputs(n=500, m=30, nh=8, dtype=np.float32)
    args = fw.to_device(inputs, "float32", "cpu")
    h_pre = fw.to_numpy(fw.hidden_pre("eager")(args[0], args[2], args[3]))
    for step in fw.STEPS:
        got = run_step(step, "eager", inputs, "float32")
        assert got["d_x"].dtype == np.float32
        result = reference.check(got, inputs, "float32", h_pre)
        assert result.ok, result.problem
        assert 0 < result.max_rel_err < 1e-5


def case_inputs(n=300, m=20, nh=5, dtype="float32", device="cpu"):
    rng = np.random.default_rng(0)
    x = rng.random((n, m), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.float32)
    inputs = tuple(a.astype(dtype) for a in (x, y, *reference.init_params(m, nh, 0)))
    return inputs, fw.to_device(inputs, dtype, device)


@pytest.mark.parametrize("backend", list(fw.BACKENDS))
def test_run_case_checks_then_times_each_backend(backend):
    """The compile case is this file's second and last torch.compile of a step."""
    inputs, args = case_inputs()
    rec = run.run_case(fw, "cpu", "manual", backend, inputs, args, CONFIG, COMMON)
    assert rec.status == "ok", rec.error
    assert rec.framework == "torch" and len(rec.samples_s) == 3 and rec.first_call_s > 0
    assert rec.max_rel_err < 1e-5 and set(rec.rel_errs) == set(OUTPUTS)
    assert rec.tracing_count == (None if backend == "eager" else 1)
    assert rec.retraced in (None, False)


def test_adapter_facts_on_cpu():
    assert "cpu" in fw.devices() and fw.peak_bytes("cpu") is None
    fw.set_tf32(False)
    facts = fw.info()
    assert facts["version"] == torch.__version__ and facts["tf32"] is False
    a, b = fw.to_device((np.eye(3), np.ones((3, 3))), "float32", "cpu")
    np.testing.assert_array_equal(fw.to_numpy(fw.gemm(a, b)), np.ones((3, 3)))
    np.testing.assert_array_equal(fw.to_numpy(fw.copy(b)), np.ones((3, 3)))
    fw.sync()


@pytest.mark.parametrize("backend", list(fw.BACKENDS))
@pytest.mark.parametrize("step", list(fw.STEPS))
def test_gpu_every_step_matches_reference_in_float64(step, backend):
    require_gpu()
    inputs = tiny_inputs()
    got = run_step(step, backend, inputs, device="gpu")
    assert_matches_reference(got, inputs)


@pytest.mark.parametrize("backend", list(fw.BACKENDS))
def test_gpu_run_case_with_tf32_off_passes_and_reports_peak_memory(backend):
    require_gpu()
    fw.set_tf32(False)
    inputs, args = case_inputs(n=4000, m=784, nh=50, device="gpu")
    for step in fw.STEPS:
        rec = run.run_case(fw, "gpu", step, backend, inputs, args, CONFIG, COMMON)
        assert rec.status == "ok", f"{step}: {rec.error}"
        assert rec.max_rel_err < 1e-5
        assert rec.peak_bytes > 0 and rec.peak_method.startswith("torch allocator peak")
