"""The float64 NumPy oracle: the lesson's forward and backward pass, and the check every case must pass.

Framework-free (NumPy only), so every framework's steps are judged by the same code.
"""
from dataclasses import dataclass

import numpy as np

OUTPUTS = ("loss", "d_x", "d_w1", "d_b1", "d_w2", "d_b2")

# Largest relative error ||got - ref|| / ||ref|| accepted per output, by the case's dtype.
# float32 (unit roundoff 6e-8): outputs are sums over n = 5e4 rows or m = 784 columns, and
# backends sum in different orders (oneDNN, Eigen, XLA, cuBLAS), which gives about 1e-7..1e-6
# here; 1e-4 leaves headroom for larger n while any wrong formula errs by 1e-2 or more.
# float64 (unit roundoff 1.1e-16): observed errors are about 1e-15; 1e-10 is the same headroom.
TOLERANCE = {"float32": 1e-4, "float64": 1e-10}
UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float64": 2.0 ** -53}


def init_params(m, nh, seed=0, dtype=np.float32):
    """w1 (m, nh), b1 (nh,), w2 (nh, 1), b2 (1,): Kaiming-scaled normals and zero biases, seeded."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((m, nh)) * np.sqrt(2.0 / m)
    w2 = rng.standard_normal((nh, 1)) * np.sqrt(1.0 / nh)
    return tuple(a.astype(dtype) for a in (w1, np.zeros(nh), w2, np.zeros(1)))


def forward_backward(x, y, w1, b1, w2, b2, mask=None):
    """Loss and gradients (in OUTPUTS order) in float64; `mask` (n, nh) overrides h_pre > 0."""
    x, y, w1, b1, w2, b2 = (np.asarray(a, np.float64) for a in (x, y, w1, b1, w2, b2))
    h_pre = x @ w1 + b1
    mask = h_pre > 0 if mask is None else mask
    h = np.where(mask, h_pre, 0.0)
    out = h @ w2 + b2
    diff = out[:, 0] - y
    loss = np.mean(diff ** 2)
    d_out = 2.0 * diff[:, None] / len(x)
    d_h_pre = np.where(mask, d_out @ w2.T, 0.0)
    return {"loss": loss, "d_x": d_h_pre @ w1.T, "d_w1": x.T @ d_h_pre, "d_b1": d_h_pre.sum(0),
            "d_w2": h.T @ d_out, "d_b2": d_out.sum(0)}


@dataclass(frozen=True)
class Check:
    errors: dict          # output name -> relative error
    max_rel_err: float
    tolerance: float
    mask_flips: int       # ReLU mask entries where the case and float64 disagree, all near zero
    problem: str | None   # why the case failed, or None

    @property
    def ok(self):
        return self.problem is None


def check(got, inputs, dtype, h_pre=None):
    """Compare a case's outputs with the float64 reference on the same inputs.

    got: {name: array} for every name in OUTPUTS; inputs: (x, y, w1, b1, w2, b2) as the case saw
    them; h_pre: the case's own first-layer pre-activation, computed by the same backend.

    A pre-activation within rounding of zero can be positive in one precision and negative in
    another, and each such flip moves one row of d_x by ~1e-3 relative. So the reference uses the
    case's own ReLU mask, and the mask is checked apart: it may differ from float64's only where
    |h_pre| is within a forward-error bound of zero (gamma_m * (|x| @ |w1| + |b1|)); any other
    difference is a real error.
    """
    tolerance = TOLERANCE[dtype]
    x, _, w1, b1, _, _ = (np.asarray(a, np.float64) for a in inputs)
    h_pre64 = x @ w1 + b1
    mask, flips, problem = None, 0, None
    if h_pre is not None:
        mask = np.asarray(h_pre) > 0
        flipped = mask != (h_pre64 > 0)
        flips = int(flipped.sum())
        m = x.shape[1]
        bound = 2 * (m + 1) * UNIT_ROUNDOFF[dtype] * (np.abs(x) @ np.abs(w1) + np.abs(b1))
        far = int((flipped & (np.abs(h_pre64) > bound)).sum())
        if far:
            problem = f"ReLU mask differs from float64 at {far} entries that are not near zero"
    ref = forward_backward(*inputs, mask=mask)
    errors = {}
    for name in OUTPUTS:
        g = np.asarray(got[name], np.float64)
        r = np.asarray(ref[name], np.float64)
        if g.shape != r.shape:
            problem = problem or f"{name} has shape {g.shape}, expected {r.shape}"
            errors[name] = float("inf")
            continue
        scale = np.linalg.norm(r)
        diff = np.linalg.norm(g - r)
        errors[name] = float(diff / scale) if scale > 0 else float(diff)
    worst = max(errors, key=errors.get)
    max_rel_err = errors[worst]
    if problem is None and not max_rel_err <= tolerance:  # `not <=` also catches NaN
        problem = f"{worst} relative error {max_rel_err:.2e} exceeds the {dtype} tolerance {tolerance:.0e}"
    return Check(errors, max_rel_err, tolerance, flips, problem)
