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
    return {
        "loss": np.mean(diff**2),
        "d_x": d_h_pre @ w1.T,
        "d_w1": x.T @ d_h_pre,
        "d_b1": d_h_pre.sum(0),
        "d_w2": h.T @ d_out,
        "d_b2": d_out.sum(0),
    }, h_pre


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
    got[output] = got[output] * np.float32(1.01)  # a 1% error in one output
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


def near_zero_inputs():
    """Inputs with one pre-activation moved to within float32 rounding of zero: (inputs, its index)."""
    inputs = list(inputs32())
    x, _, w1, b1, _, _ = inputs
    r, j = np.unravel_index(np.argmin(np.abs(x @ w1 + b1)), (x.shape[0], w1.shape[1]))
    b1 = b1.copy()
    b1[j] = np.float32(-(x.astype(np.float64) @ w1.astype(np.float64))[r, j])
    inputs[3] = b1
    return tuple(inputs), (r, j)


@pytest.mark.parametrize("flip_in", ["step", "probe"])
def test_the_step_and_the_probe_may_disagree_on_a_near_zero_entry(flip_in):
    """Seen on an H100: torch.compile's fused step and its separately compiled mask probe put one
    near-zero pre-activation on opposite sides of zero; d_x, d_w1 and d_b1 then differ from the
    probe-mask reference by far more than rounding (4.4e-4 against a 1e-4 tolerance), yet both
    signs are right. The check finds the entry from the case's d_x and checks again, at the same
    tolerance."""
    inputs, (r, j) = near_zero_inputs()
    ref = reference.Reference(inputs, "float32")
    assert ref.near_zero[r, j]
    mask64 = ref.h_pre64 > 0
    flipped = mask64.copy()
    flipped[r, j] = ~flipped[r, j]
    step_mask, probe_mask = (flipped, mask64) if flip_in == "step" else (mask64, flipped)
    got = reference.forward_backward(*inputs, mask=step_mask)
    plain = reference.forward_backward(*inputs, mask=probe_mask)
    scale = np.linalg.norm(plain["d_x"])
    assert np.linalg.norm(got["d_x"] - plain["d_x"]) / scale > 10 * reference.TOLERANCE["float32"]
    result = ref.check(got, np.where(probe_mask, 1.0, -1.0))
    assert result.ok, result.problem
    assert result.max_rel_err < 1e-6
    assert result.mask_flips == (1 if flip_in == "step" else 0)  # against float64's mask, in the end


def test_near_zero_entries_do_not_excuse_a_wrong_gradient():
    inputs, (r, j) = near_zero_inputs()
    ref = reference.Reference(inputs, "float32")
    got = reference.forward_backward(*inputs)
    got["d_x"] = got["d_x"] * 1.001
    result = ref.check(got, ref.h_pre64)
    assert not result.ok and "d_x" in result.problem


def test_the_near_zero_allowance_does_not_cover_a_real_error():
    """The same size of change at an entry far from zero is still caught, by the gradients alone
    (the probe's mask agreeing with float64 there)."""
    inputs, _ = near_zero_inputs()
    ref = reference.Reference(inputs, "float32")
    far = np.unravel_index(np.argmax(np.abs(ref.h_pre64)), ref.h_pre64.shape)
    mask = ref.h_pre64 > 0
    mask[far] = ~mask[far]
    got = reference.forward_backward(*inputs, mask=mask)
    result = ref.check(got, ref.h_pre64)
    assert not result.ok


def test_the_reference_is_computed_once_per_mask(monkeypatch):
    inputs, _ = near_zero_inputs()
    ref = reference.Reference(inputs, "float32")
    calls = []
    real = reference.forward_backward
    monkeypatch.setattr(reference, "forward_backward", lambda *a, **k: calls.append(1) or real(*a, **k))
    got, h_pre = float32_answer(inputs)
    for _ in range(3):
        ref.check(got, ref.h_pre64)
    assert calls == []  # float64's own mask: made when the Reference was
    ref.check(got, -ref.h_pre64 * ref.near_zero + ref.h_pre64 * ~ref.near_zero)
    ref.check(got, -ref.h_pre64 * ref.near_zero + ref.h_pre64 * ~ref.near_zero)
    assert len(calls) == 1


def test_the_float64_work_in_row_blocks_equals_the_whole_array(monkeypatch):
    """x is read in float64 a block of rows at a time (x @ w1, |x| @ |w1|, x.T @ d_h_pre) and the
    norms are made a block at a time, so a big case's reference and check fault in no fresh
    whole-array float64 temporaries: blocks of 7 rows of 400, the last one short, give the whole
    arrays' answers, and the check's verdict and errors are unchanged."""
    inputs = inputs32()
    got, h_pre = float32_answer(inputs)
    whole = reference.Reference(inputs, "float32").check(got, h_pre)
    x, y, w1, b1, w2, b2 = (a.astype(np.float64) for a in inputs)
    monkeypatch.setattr(reference, "BLOCK_ROWS", 7)
    blocks = list(reference._rows(inputs[0]))
    assert [r.stop - r.start for r, _ in blocks][-1] == 400 % 7 and sum(len(b) for _, b in blocks) == 400
    ref = reference.forward_backward(*inputs)
    h_pre64 = x @ w1 + b1
    d_out = 2.0 * ((np.maximum(h_pre64, 0) @ w2 + b2)[:, 0] - y)[:, None] / len(x)
    d_h_pre = np.where(h_pre64 > 0, d_out @ w2.T, 0.0)
    assert np.allclose(ref["d_w1"], x.T @ d_h_pre, rtol=1e-12, atol=0)
    assert np.allclose(ref["d_x"], d_h_pre @ w1.T, rtol=1e-12, atol=0)
    scale, diff = reference._norms(got["d_x"], ref["d_x"])
    assert scale == pytest.approx(np.linalg.norm(ref["d_x"]), rel=1e-12)
    assert diff == pytest.approx(np.linalg.norm(got["d_x"].astype(np.float64) - ref["d_x"]), rel=1e-9)
    blocked = reference.Reference(inputs, "float32")
    assert np.allclose(blocked.h_pre64, h_pre64, rtol=1e-12, atol=1e-15)
    result = blocked.check(got, h_pre)
    assert result.ok and whole.ok and result.mask_flips == whole.mask_flips
    assert result.errors == pytest.approx(
        whole.errors, rel=0, abs=1e-12
    )  # errors of about 1e-8, summed in another order


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


def test_the_reference_matches_finite_differences():
    from tests.helpers import tiny_inputs
    from tests.test_conformance import numeric_grads

    inputs = tiny_inputs(n=6, m=4, nh=3, seed=5)
    analytic = reference.forward_backward(*inputs)
    for name, g in numeric_grads(inputs).items():
        np.testing.assert_allclose(analytic[name], g, rtol=1e-6, atol=1e-8, err_msg=name)


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


def test_the_gemm_shapes_are_the_lessons_matrix_products():
    """kernels/cost.py gemms: the six products of the forward and backward pass, whose FLOPs are the
    matrix part of the step's analytic count (the rest is elementwise)."""
    n, m, nh = 5000, 784, 50
    shapes = cost.gemms(n, m, nh)
    assert len(shapes) == 6 and (n, m, nh) in shapes and (m, n, nh) in shapes and (n, nh, m) in shapes
    matmul = sum(2 * r * k * c for r, k, c in shapes)
    assert matmul == 6 * n * m * nh + 6 * n * nh and matmul < cost.flops("manual", n, m, nh)
