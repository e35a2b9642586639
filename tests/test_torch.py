"""What is PyTorch's own, beyond the contract (tests/test_conformance.py): torch.compile's graph
count, autograd leaving its inputs alone, and ReLU'(0) as torch's autograd has it."""

import numpy as np
import pytest

from kernels.reference import OUTPUTS
from tests.helpers import load_or_skip, tiny_inputs

fw = load_or_skip("torch")
import torch  # noqa: E402

from kernels import torch_steps  # noqa: E402
from tests.test_conformance import assert_matches_reference  # noqa: E402


def test_compile_makes_one_graph_per_step_backward_included():
    inputs = tiny_inputs()
    args = fw.to_device(inputs, "float64", "cpu")
    for step in fw.steps:
        fn = fw.compile(step, "compile")
        assert fw.tracing_count(fn) == 0
        assert_matches_reference(dict(zip(OUTPUTS, (fw.to_numpy(t) for t in fn(*args)))), inputs)
        # One graph, Tensor.backward() included, where this PyTorch can trace it (2.11 and later).
        whole = step != "autograd" or hasattr(torch._dynamo.config, "trace_autograd_ops")
        assert fw.tracing_count(fn) == (1 if whole else 0), step
        fn(*args)
        assert fw.tracing_count(fn) == (1 if whole else 0), f"{step} recompiled on a second call"


def test_relu_grad_at_zero_is_zero_like_torch_relu():
    x = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    torch.relu(x).backward(torch.ones_like(x))
    np.testing.assert_array_equal(torch_steps.relu_grad(x.detach(), torch.ones_like(x)).numpy(), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])


def test_autograd_step_does_not_accumulate_or_touch_its_inputs():
    a, b = tiny_inputs(seed=7), tiny_inputs(seed=8)
    args_a, args_b = fw.to_device(a, "float64", "cpu"), fw.to_device(b, "float64", "cpu")
    step = fw.step("autograd")
    for inputs, args in ((a, args_a), (b, args_b), (a, args_a), (a, args_a)):
        assert_matches_reference(dict(zip(OUTPUTS, (fw.to_numpy(t) for t in step(*args)))), inputs)
    assert not any(t.requires_grad or t.grad is not None for t in args_a + args_b)


def test_gpu_peak_is_the_caching_allocators():
    if "gpu" not in fw.devices():
        pytest.skip("no CUDA GPU")
    from bench import run
    from tests.helpers import COMMON, CONFIG
    from tests.test_conformance import case_inputs

    inputs, args = case_inputs(fw, n=4000, m=784, nh=50, device="gpu")
    rec = run.run_case(fw, "gpu", "manual", "eager", inputs, args, CONFIG, COMMON)
    assert rec.peak_bytes > 0 and rec.peak_method.startswith("torch allocator peak")
