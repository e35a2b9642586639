"""The framework contract (bench/frameworks/base.py), checked the same way for every framework in the
registry: each step under each backend against the float64 reference, the plumbing around a call,
and a case through the run engine. A framework that is not installed skips with its install hint;
GPU cases skip where the framework sees no GPU."""

import importlib.metadata

import numpy as np
import pytest

from bench import frameworks, run
from kernels import models, reference
from kernels.reference import OUTPUTS
from tests.helpers import COMMON, CONFIG, tiny_inputs


def _param(name):
    reason = frameworks.unavailable_reason(name)
    return pytest.param(name, marks=pytest.mark.skip(reason=reason) if reason else (), id=name)


FRAMEWORKS = [_param(name) for name in frameworks.FRAMEWORKS]


@pytest.fixture(params=FRAMEWORKS)
def fw(request):
    return frameworks.load(request.param)


def outputs(fw, fn, args, device="cpu"):
    with fw.placement(device):
        out = fn(*args)
        fw.sync()
    return dict(zip(OUTPUTS, (fw.to_numpy(t) for t in out)))


def assert_matches_reference(got, inputs, rtol=1e-10):
    ref = reference.forward_backward(*inputs)
    for name in OUTPUTS:
        assert np.shape(got[name]) == np.shape(ref[name]), name
        np.testing.assert_allclose(got[name], ref[name], rtol=rtol, atol=1e-12, err_msg=name)


def every_step_and_backend(fw):
    return [(step, backend) for step in fw.steps for backend in fw.backends]


def test_the_contract_is_filled(fw):
    assert fw.name in frameworks.FRAMEWORKS and frameworks.load(fw.name) is fw
    assert fw.steps and fw.backends and "manual" in fw.steps and "eager" in fw.backends
    assert fw.devices()[0] == "cpu" and set(fw.devices()) <= {"cpu", "gpu"}
    for name in ("lin", "lin_grad", "relu", "relu_grad", "mse", "mse_grad"):
        assert callable(getattr(fw.ops, name)), name


def test_every_step_under_every_backend_matches_the_reference_in_float64(fw):
    """One compile per step and backend (torch.compile is slow on CPU), on two inputs of the same
    shape, so a step that kept state from its first call fails on the second."""
    a, b = tiny_inputs(seed=7), tiny_inputs(seed=8)
    for step, backend in every_step_and_backend(fw):
        fn = fw.compile(step, backend)
        for inputs in (a, b):
            got = outputs(fw, fn, fw.to_device(inputs, "float64", "cpu"))
            assert all(np.asarray(got[k]).dtype == np.float64 for k in OUTPUTS), (step, backend)
            assert_matches_reference(got, inputs)


def test_steps_agree_with_the_manual_step_in_float64(fw):
    inputs = tiny_inputs(n=300, m=40, nh=9, seed=3)
    args = fw.to_device(inputs, "float64", "cpu")
    manual = outputs(fw, fw.compile("manual", "eager"), args)
    for step in fw.steps:
        got = outputs(fw, fw.compile(step, "eager"), args)
        for name in OUTPUTS:
            np.testing.assert_allclose(got[name], manual[name], rtol=1e-10, atol=1e-13, err_msg=f"{step}: {name}")


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


def test_the_manual_step_matches_finite_differences(fw):
    inputs = tiny_inputs(n=6, m=4, nh=3, seed=6)
    got = outputs(fw, fw.compile("manual", "eager"), fw.to_device(inputs, "float64", "cpu"))
    for name, g in numeric_grads(inputs).items():
        np.testing.assert_allclose(got[name], g, rtol=1e-6, atol=1e-8, err_msg=name)


def deep_inputs(loss, n=60, widths=(12, 9, 7, 8), seed=4, dtype=np.float64):
    """(x, y, w1, b1, ..., w4, b4) of a network of three hidden layers, y as `loss` takes it."""
    rng = np.random.default_rng(seed)
    x, labels = rng.random((n, widths[0])), rng.integers(0, models.CLASSES, n).astype(float)
    w = models.widths("mlp:" + ",".join(map(str, (*widths, 1))), widths[0], 0, loss)
    params = [p if p.ndim == 2 else rng.normal(0, 0.1, p.shape) for p in models.init_params(w, seed, np.float64)]
    return tuple(np.asarray(a, dtype) for a in (x, models.targets(labels, loss), *params))


@pytest.mark.parametrize("loss", models.LOSSES)
def test_every_step_matches_the_reference_at_depth_three_with_either_loss(fw, loss):
    """Steps are built from the layer list: four linear layers (three ReLUs) and each loss, every
    step under every backend, against float64."""
    inputs = deep_inputs(loss)
    names = models.output_names(4)
    ref = reference.forward_backward(*inputs)
    for step, backend in every_step_and_backend(fw):
        with fw.placement("cpu"):
            out = fw.compile(step, backend)(*fw.to_device(inputs, "float64", "cpu"))
        assert len(out) == len(names), (step, backend)
        for name, got in zip(names, out):
            np.testing.assert_allclose(
                fw.to_numpy(got), ref[name], rtol=1e-9, atol=1e-12, err_msg=f"{step}/{backend}: {name}"
            )


def test_a_users_layers_run_under_every_step_and_backend_that_takes_them(fw):
    """A user's model (a Tanh layer with its hand-written backward, from examples/tanh_model.py),
    every step but those that build the lesson's own layers, against its float64 evaluation."""
    import importlib.util
    from pathlib import Path

    from bench.run.prepare import USER_MODEL_SKIPS
    from kernels.lesson import Linear, Relu

    path = Path(__file__).resolve().parent.parent / "examples" / "tanh_model.py"
    loader = importlib.util.spec_from_file_location("tanh_model", path)
    example = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(example)
    spec = (Linear(12, 9), example.Tanh, Linear(9, 7), Relu, Linear(7, 1))
    inputs = deep_inputs("mse", widths=(12, 9, 7))
    ref = reference.Evaluated(inputs, "float64", spec)
    for step, backend in every_step_and_backend(fw):
        if step in USER_MODEL_SKIPS:
            continue
        with fw.placement("cpu"):
            out = fw.compile(step, backend, spec)(*fw.to_device(inputs, "float64", "cpu"))
        result = ref.check(dict(zip(ref.names, (fw.to_numpy(t) for t in out))))
        assert result.ok and result.max_rel_err < 1e-9, f"{step}/{backend}: {result.problem or result.max_rel_err}"


def test_relu_grad_at_zero_is_zero(fw):
    x, dy = fw.to_device((np.array([-1.0, 0.0, 2.0]), np.ones(3)), "float64", "cpu")
    np.testing.assert_array_equal(fw.to_numpy(fw.ops.relu_grad(x, dy)), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(fw.to_numpy(fw.ops.relu(x)), [0.0, 0.0, 2.0])


def test_float32_steps_stay_float32_and_pass_the_check(fw):
    inputs = tiny_inputs(dtype=np.float32)
    args = fw.to_device(inputs, "float32", "cpu")
    ref = reference.Reference(inputs, "float32")
    for backend in fw.backends:
        h_pre = [fw.to_numpy(t) for t in fw.mask_probe(backend)(args[0], *args[2:])]
        for step in fw.steps:
            got = outputs(fw, fw.compile(step, backend), args)
            assert all(np.asarray(got[k]).dtype == np.float32 for k in OUTPUTS), (step, backend)
            result = ref.check(got, h_pre)
            assert result.ok, f"{step}/{backend}: {result.problem}"
            assert 0 < result.max_rel_err < 1e-5


def test_tracing_is_counted_and_no_call_retraces(fw):
    inputs = tiny_inputs()
    args = fw.to_device(inputs, "float64", "cpu")
    for backend in fw.backends:
        fn = fw.compile("manual", backend)
        fw.trace(fn, args)
        outputs(fw, fn, args)
        after_first = fw.tracing_count(fn)
        outputs(fw, fn, args)
        if backend == "eager":
            assert after_first is None and fw.tracing_count(fn) is None
        else:
            assert after_first >= 1 and fw.tracing_count(fn) == after_first, backend
    assert fw.mask_probe("eager") is fw.mask_probe("eager")


def test_plumbing_on_cpu(fw):
    assert fw.peak_bytes("cpu") is None
    fw.reset_peak("cpu")
    fw.set_tf32(False)
    assert fw.tf32_enabled() is False
    facts = fw.info()
    package = fw.package
    assert facts["version"].split("+")[0] == importlib.metadata.version(package).split("+")[0]
    a, b = fw.to_device((np.eye(3), np.ones((3, 3))), "float32", "cpu")
    with fw.placement("cpu"):
        np.testing.assert_array_equal(fw.to_numpy(fw.gemm(a, b)), np.ones((3, 3)))
        np.testing.assert_array_equal(fw.to_numpy(fw.copy(b)), 2 * np.ones((3, 3)))
        fw.sync()


def case_inputs(fw, n=None, m=None, nh=None, dtype="float32", device="cpu"):
    """A float32 case's inputs, by default the tiny problem's shape (a compiler's cache then serves
    every test that compiles a step at it: torch.compile costs seconds a shape on a CPU)."""
    tiny = tiny_inputs()
    n, m, nh = n or tiny[0].shape[0], m or tiny[0].shape[1], nh or tiny[2].shape[1]
    rng = np.random.default_rng(0)
    x = rng.random((n, m), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.float32)
    inputs = tuple(a.astype(dtype) for a in (x, y, *reference.init_params(m, nh, 0)))
    return inputs, fw.to_device(inputs, dtype, device)


def test_a_case_is_checked_then_timed_under_every_backend(fw):
    inputs, args = case_inputs(fw)
    for backend in fw.backends:
        rec = run.run_case(fw, "cpu", "manual", backend, inputs, args, CONFIG, COMMON)
        assert rec.status == "ok", f"{backend}: {rec.error}"
        assert rec.framework == fw.name and rec.backend == backend
        assert len(rec.samples_s) == 3 and len(rec.warmup_s) == 1 and rec.first_call_s > 0
        assert rec.max_rel_err < 1e-5 and set(rec.rel_errs) == set(OUTPUTS)
        assert (rec.tracing_count is None) == (backend == "eager") and rec.retraced in (None, False)
        assert rec.peak_method and rec.peak_bytes is not None


def require_gpu(fw):
    if "gpu" not in fw.devices():
        pytest.skip(f"no GPU visible to {fw.name}")


def test_gpu_every_step_matches_the_reference_in_float64(fw):
    require_gpu(fw)
    inputs = tiny_inputs()
    for step, backend in every_step_and_backend(fw):
        assert_matches_reference(
            outputs(fw, fw.compile(step, backend), fw.to_device(inputs, "float64", "gpu"), "gpu"), inputs
        )


def test_gpu_cases_with_tf32_off_pass_and_report_peak_memory(fw):
    require_gpu(fw)
    fw.set_tf32(False)
    inputs, args = case_inputs(fw, n=4000, m=784, nh=50, device="gpu")
    for step, backend in every_step_and_backend(fw):
        rec = run.run_case(fw, "gpu", step, backend, inputs, args, CONFIG, COMMON)
        assert rec.status == "ok", f"{step}/{backend}: {rec.error}"
        assert rec.max_rel_err < 1e-5
        assert rec.peak_bytes is not None and rec.peak_method
