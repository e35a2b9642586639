"""The correctness check itself: it passes right answers, catches wrong ones, and handles ReLU flips."""
import numpy as np
import pytest

from kernels import cost, reference
from kernels.reference import OUTPUTS


def inputs32(n=400, m=20, nh=6, seed=2):
    rng = np.random.default_rng(seed)
    x = rng.random((n, m), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.float32)
    return (x, y, *reference.init_params(m, nh, seed, np.float32))


def float32_answer(inputs):
    """The float32 forward/backward by NumPy: an honest float32 case."""
    x, y, w1, b1, w2, b2 = inputs
    h_pre = x @ w1 + b1
    mask = h_pre > 0
    h = np.where(mask, h_pre, 0).astype(np.float32)
    out = h @ w2 + b2
    diff = out[:, 0] - y
    d_out = (2 * diff[:, None] / np.float32(len(x))).astype(np.float32)
    d_h_pre = np.where(mask, d_out @ w2.T, 0).astype(np.float32)
    return {"loss": np.mean(diff ** 2), "d_x": d_h_pre @ w1.T, "d_w1": x.T @ d_h_pre, "d_b1": d_h_pre.sum(0),
            "d_w2": h.T @ d_out, "d_b2": d_out.sum(0)}, h_pre


def test_a_right_float32_answer_passes():
    inputs = inputs32()
    got, h_pre = float32_answer(inputs)
    result = reference.check(got, inputs, "float32", h_pre)
    assert result.ok, result.problem
    assert set(result.errors) == set(OUTPUTS)
    assert result.max_rel_err == max(result.errors.values()) > 0


@pytest.mark.parametrize("output", OUTPUTS)
def test_a_wrong_gradient_is_caught(output):
    inputs = inputs32()
    got, h_pre = float32_answer(inputs)
    got[output] = got[output] * np.float32(1.01)   # a 1% error in one output
    result = reference.check(got, inputs, "float32", h_pre)
    assert not result.ok
    assert output in result.problem


def test_a_wrong_mask_convention_is_caught():
    """Using d_h instead of the masked d_h (a forgotten ReLU gradient) fails."""
    inputs = inputs32()
    x, y, w1, b1, w2, b2 = inputs
    got, h_pre = float32_answer(inputs)
    ref = reference.forward_backward(*inputs, mask=np.ones_like(h_pre, bool))
    got["d_w1"] = ref["d_w1"].astype(np.float32)
    assert not reference.check(got, inputs, "float32", h_pre).ok


def test_a_near_zero_mask_flip_is_allowed_and_counted():
    inputs = list(inputs32())
    x, _, w1, b1, _, _ = inputs
    h_pre = x @ w1 + b1
    r, j = np.unravel_index(np.argmin(np.abs(h_pre)), h_pre.shape)
    # move one pre-activation to within rounding of zero, then let the case see the other sign
    b1 = b1.copy()
    inputs[3] = b1
    x64 = x.astype(np.float64) @ w1.astype(np.float64)
    b1[j] = np.float32(-x64[r, j])
    h64 = x64 + b1.astype(np.float64)
    case_h_pre = h64.astype(np.float32)
    case_h_pre[r, j] = -np.sign(h64[r, j]) * 1e-7 or 1e-7
    got = reference.forward_backward(*inputs, mask=case_h_pre > 0)
    result = reference.check(got, tuple(inputs), "float32", case_h_pre)
    assert result.ok, result.problem
    assert result.mask_flips == 1


def test_a_mask_flip_far_from_zero_is_an_error():
    inputs = inputs32()
    got, h_pre = float32_answer(inputs)
    h_pre = h_pre.copy()
    r, j = np.unravel_index(np.argmax(np.abs(h_pre)), h_pre.shape)
    h_pre[r, j] = -h_pre[r, j]
    result = reference.check(got, inputs, "float32", h_pre)
    assert not result.ok and "not near zero" in result.problem


def test_nan_and_wrong_shapes_fail():
    inputs = inputs32()
    got, h_pre = float32_answer(inputs)
    assert not reference.check({**got, "loss": np.float32("nan")}, inputs, "float32", h_pre).ok
    result = reference.check({**got, "d_b2": np.zeros((1, 1), np.float32)}, inputs, "float32", h_pre)
    assert not result.ok and "shape" in result.problem


def test_cost_formulas():
    n, m, nh = 10, 4, 3
    # three (n x m x nh) and three (n x nh x 1) matrix products at 2 flops per multiply-add,
    # plus 4 elementwise passes over (n, nh) and 8 over (n,)
    assert cost.flops("manual", n, m, nh) == 3 * 2 * n * m * nh + 3 * 2 * n * nh + 4 * n * nh + 8 * n
    assert cost.flops("broadcast", n, m, nh) == cost.flops("manual", n, m, nh)
    assert cost.min_bytes("manual", n, m, nh, 4) == 4 * (2 * n * m + n + 2 * (m * nh + 2 * nh + 1))
    # the broadcast step's (n, m, nh) product dominates its memory
    assert cost.memory_bytes("broadcast", 50_000, 784, 50, 4) > 7.8e9
    assert cost.memory_bytes("manual", 50_000, 784, 50, 4) < 0.5e9
