"""The float64 NumPy oracle: the lesson's forward and backward pass, and the check every case must pass.

Framework-free (NumPy only), so every framework's steps are judged by the same code.
"""

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

OUTPUTS = ("loss", "d_x", "d_w1", "d_b1", "d_w2", "d_b2")

# The precision a case computes in: its storage dtype, or "tf32" (float32 storage, matrix products
# with 10-bit-mantissa inputs on GPUs that have it). Unit roundoff u of each, and of the sums inside
# a matrix product (frameworks and libraries accumulate bfloat16 and float16 products in float32).
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "tf32": 2.0**-11, "float16": 2.0**-11, "bfloat16": 2.0**-8}
ACCUMULATE = {"float64": "float64", "float32": "float32", "tf32": "tf32", "float16": "float32", "bfloat16": "float32"}

# Largest relative error ||got - ref|| / ||ref|| accepted per output, by the case's precision.
# float32 (u = 6e-8): outputs are sums over n rows or m = 784 columns, and backends sum in different
# orders (oneDNN, Eigen, XLA, cuBLAS), which puts them a few to tens of u apart; 1e-4 leaves headroom
# for larger n while any wrong formula errs by 1e-2 or more. float64 (u = 1.1e-16): 1e-10, the same
# headroom over its rounding.
# Reduced precisions cannot keep that headroom (100 x u is a relative error of 39% in bfloat16):
# their reference takes the inputs as rounded to the case's dtype, so what is left is the rounding
# of the step's own results and intermediates, of order u per output (tests/test_measurement.py
# holds every step to it in each precision it has); 16 u leaves headroom and still fails a wrong
# formula, which errs by order 1 (a forgotten ReLU mask, a transposed weight) or overflows
# (float16's largest value is 65504).
TOLERANCE = {"float64": 1e-10, "float32": 1e-4, **{p: 16 * UNIT_ROUNDOFF[p] for p in ("tf32", "float16", "bfloat16")}}


def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype of a dtype name; bfloat16 is ml_dtypes' (NumPy has none)."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def precision(dtype: str, tf32: bool = False) -> str:
    """The precision a case computes in: "tf32" for float32 with TF32 on, else its dtype."""
    return "tf32" if tf32 and dtype == "float32" else dtype


def init_params(m: int, nh: int, seed: int = 0, dtype: npt.DTypeLike = np.float32) -> tuple[np.ndarray, ...]:
    """w1 (m, nh), b1 (nh,), w2 (nh, 1), b2 (1,): Kaiming-scaled normals and zero biases, seeded."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((m, nh)) * np.sqrt(2.0 / m)
    w2 = rng.standard_normal((nh, 1)) * np.sqrt(1.0 / nh)
    return tuple(a.astype(dtype) for a in (w1, np.zeros(nh), w2, np.zeros(1)))


def forward_backward(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    w1: npt.ArrayLike,
    b1: npt.ArrayLike,
    w2: npt.ArrayLike,
    b2: npt.ArrayLike,
    mask: np.ndarray | None = None,
    keep_out: bool = False,
    h_pre: np.ndarray | None = None,
) -> dict[str, np.ndarray | np.floating]:
    """Loss and gradients (in OUTPUTS order) in float64; `mask` (n, nh) overrides h_pre > 0;
    keep_out: also the network's output under "_out"; h_pre: x @ w1 + b1 in float64 where known
    (a Reference keeps it). x is read in float64 a block of rows at a time (_rows)."""
    x = np.asarray(x)
    y, w1, b1, w2, b2 = (np.asarray(a, np.float64) for a in (y, w1, b1, w2, b2))
    if h_pre is None:
        h_pre = np.empty((len(x), w1.shape[1]))
        for rows, xb in _rows(x):
            np.matmul(xb, w1, out=h_pre[rows])
        h_pre += b1
    mask = h_pre > 0 if mask is None else mask
    h = np.where(mask, h_pre, 0.0)
    out = h @ w2 + b2
    diff = out[:, 0] - y
    loss = np.mean(diff**2)
    d_out = 2.0 * diff[:, None] / len(x)
    d_h_pre = np.where(mask, d_out @ w2.T, 0.0)
    d_w1 = np.zeros_like(w1)
    for rows, xb in _rows(x):
        d_w1 += xb.T @ d_h_pre[rows]
    ref = {
        "loss": loss,
        "d_x": d_h_pre @ w1.T,
        "d_w1": d_w1,
        "d_b1": d_h_pre.sum(0),
        "d_w2": h.T @ d_out,
        "d_b2": d_out.sum(0),
    }
    if keep_out:
        ref["_out"] = out
    return ref


@dataclass(frozen=True)
class Check:
    errors: dict[str, float]  # output name -> relative error
    max_rel_err: float
    tolerance: float
    mask_flips: int  # ReLU mask entries where the case and float64 disagree, all near zero
    problem: str | None  # why the case failed, or None

    @property
    def ok(self) -> bool:
        return self.problem is None


# Rows of float64 work a block at a time: whole-array temporaries are fresh pages, which a machine
# may fault in slowly, at a cost set by what its other processes did to memory (at n = 50,000 a
# float64 copy of x and the check's copies of d_x are close to a gigabyte); a block of 4096 rows x 784
# is 26 MB, reused.
BLOCK_ROWS = 1 << 12


def _rows(x):
    """(slice, those rows of x in float64) a block of BLOCK_ROWS rows at a time, into one reused
    buffer: the caller may write over it."""
    rows = BLOCK_ROWS
    buf = np.empty((min(rows, len(x)), *x.shape[1:]))
    for i in range(0, len(x), rows):
        block = buf[: min(rows, len(x) - i)]
        block[...] = x[i : i + rows]
        yield slice(i, i + len(block)), block


def _norms(got, ref):
    """(||ref||, ||got - ref||) in float64, a block of rows at a time (BLOCK_ROWS)."""
    got = np.asarray(got)
    if got.ndim == 0:  # the loss
        return np.linalg.norm(ref), np.linalg.norm(np.asarray(got, np.float64) - ref)
    scale = diff = 0.0
    for block, d in _rows(got):
        r = ref[block]
        scale += float(np.vdot(r, r))
        d -= r
        diff += float(np.vdot(d, d))
    return np.sqrt(scale), np.sqrt(diff)


def _digest(mask):
    return hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=16).digest()


# The outputs a near-zero ReLU entry moves by more than rounding (see Reference).
MASK_SENSITIVE = ("d_x", "d_w1", "d_b1")


class Reference:
    """The float64 oracle for one set of inputs, shared by every case that sees them.

    Made once per input set (a sweep's n and dtype): the float64 pre-activation and its rounding
    bound here, the reference outputs once per distinct ReLU mask (nearly every case sees float64's
    own), so checking ten cases at n = 1e6 costs about one reference rather than ten.

    Near-zero ReLU entries. A pre-activation within rounding of zero can be positive in one
    precision and negative in another, and even in two computations of the same precision: on a
    GPU, torch.compile's fused step and its separately compiled mask probe can put one such entry
    on opposite sides of zero. Either sign is then right, and the choice moves d_h_pre[i, j] between 0
    and g = d_out[i] * w2[j]: row i of d_x by g * w1[:, j], column j of d_w1 by g * x[i], d_b1[j]
    by g (the other outputs by |h_pre[i, j]|, within rounding). So the reference takes the case's own
    mask as its probe reports it (a difference from float64's outside the near-zero set, |h_pre|
    within gamma_m * (|x| @ |w1| + |b1|) of zero, is an error), and if d_x, d_w1 or d_b1 then miss
    the tolerance, the near-zero entries whose flip explains the case's d_x, row by row, are
    flipped too and the whole check is made again against that mask, at the same tolerance. The
    tolerance is never widened: an entry counts only if the case's own d_x shows it.
    """

    def __init__(self, inputs: Iterable[np.ndarray], precision: str) -> None:
        """inputs: (x, y, w1, b1, w2, b2) as the case sees them (rounded to its dtype); precision:
        its dtype's name, or "tf32"."""
        self.inputs, self.dtype = tuple(inputs), precision
        self.tolerance = TOLERANCE[precision]
        x = np.asarray(self.inputs[0])
        _, w1, b1, _, _ = self._params64 = tuple(np.asarray(a, np.float64) for a in self.inputs[1:])
        # x @ w1 + b1 and |x| @ |w1|, x read a block of rows at a time in float64 (_rows)
        self.h_pre64, abs_product = np.empty((len(x), w1.shape[1])), np.empty((len(x), w1.shape[1]))
        for rows, xb in _rows(x):
            np.matmul(xb, w1, out=self.h_pre64[rows])
            np.matmul(np.abs(xb, out=xb), np.abs(w1), out=abs_product[rows])
        self.h_pre64 += b1
        m = x.shape[1]
        # the sums of x @ w1 (in the accumulating precision), then the product and the bias added
        # in the case's own dtype: where |h_pre| is within this of zero, either sign is right
        u_sum, u_own = UNIT_ROUNDOFF[ACCUMULATE[precision]], UNIT_ROUNDOFF[precision]
        bound = 2 * (m + 1) * u_sum * (abs_product + np.abs(b1)) + 2 * u_own * (np.abs(self.h_pre64 - b1) + np.abs(b1))
        self.near_zero = np.abs(self.h_pre64) <= bound
        self.mask64 = self.h_pre64 > 0
        self._refs: dict[bytes, dict[str, np.ndarray | np.floating]] = {}
        self.outputs(self.mask64)

    def outputs(self, mask: np.ndarray) -> dict[str, np.ndarray | np.floating]:
        """The float64 outputs under ReLU `mask` (the network's output under "_out"), kept for reuse."""
        key = _digest(mask)
        if key not in self._refs:
            if len(self._refs) >= 2:  # bounded: a reference at n = 1e6 is several GB
                self._refs.pop(next(iter(self._refs)))
            y, w1, b1, w2, b2 = self._params64
            self._refs[key] = forward_backward(
                self.inputs[0], y, w1, b1, w2, b2, mask=mask, keep_out=True, h_pre=self.h_pre64
            )
        return self._refs[key]

    def _errors(self, got, ref):
        errors, problem = {}, None
        for name in OUTPUTS:
            r = ref[name]
            if np.shape(got[name]) != r.shape:
                problem = problem or f"{name} has shape {np.shape(got[name])}, expected {r.shape}"
                errors[name] = float("inf")
                continue
            scale, diff = _norms(got[name], r)
            errors[name] = float(diff / scale) if scale > 0 else float(diff)
        return errors, problem

    def _explained(self, d_x, mask, ref):
        """`mask` with the near-zero entries flipped whose flip brings the case's d_x closer to the
        reference's, row by row (greedy; a row holds a handful of such entries at most)."""
        y, w1, _, w2, _ = self._params64
        rows, cols = np.nonzero(self.near_zero)
        d_out = 2.0 * (ref["_out"][:, 0] - y) / len(y)
        mask = mask.copy()
        residual = {}
        for i, j in zip(rows.tolist(), cols.tolist()):
            if i not in residual:
                residual[i] = np.asarray(d_x[i], np.float64) - ref["d_x"][i]
            # flipping a kept entry takes g * w1[:, j] out of the reference's row, a dropped one puts it in
            move = (-1.0 if mask[i, j] else 1.0) * d_out[i] * w2[j, 0] * w1[:, j]
            after = residual[i] - move
            if after @ after < residual[i] @ residual[i]:
                residual[i] = after
                mask[i, j] = not mask[i, j]
        return mask

    def check(self, got: Mapping[str, npt.ArrayLike], h_pre: npt.ArrayLike | None = None) -> Check:
        """got: {name: array} for every name in OUTPUTS; h_pre: the case's own first-layer
        pre-activation, computed by the same backend (its ReLU mask), or None for float64's."""
        mask, problem = self.mask64, None
        if h_pre is not None:
            mask = np.asarray(h_pre) > 0
            if mask.shape != self.mask64.shape:
                problem, mask = f"the ReLU mask has shape {mask.shape}, expected {self.mask64.shape}", self.mask64
            far = int((mask != self.mask64)[~self.near_zero].sum())
            if far:
                problem = f"ReLU mask differs from float64 at {far} entries that are not near zero"
        ref = self.outputs(mask)
        errors, shape_problem = self._errors(got, ref)
        problem = problem or shape_problem
        if problem is None and self.near_zero.any() and not all(errors[k] <= self.tolerance for k in MASK_SENSITIVE):
            explained = self._explained(got["d_x"], mask, ref)
            if (explained != mask).any():
                mask, ref = explained, self.outputs(explained)
                errors, _ = self._errors(got, ref)
        worst = max(errors, key=errors.get)
        if problem is None and not errors[worst] <= self.tolerance:  # `not <=` also catches NaN
            problem = (
                f"{worst} relative error {errors[worst]:.2e} exceeds the {self.dtype} tolerance {self.tolerance:.0e}"
            )
        return Check(errors, errors[worst], self.tolerance, int((mask != self.mask64).sum()), problem)


def check(
    got: Mapping[str, npt.ArrayLike], inputs: Iterable[np.ndarray], dtype: str, h_pre: npt.ArrayLike | None = None
) -> Check:
    """Compare a case's outputs with the float64 reference on the same inputs (see Reference).

    got: {name: array} for every name in OUTPUTS; inputs: (x, y, w1, b1, w2, b2) as the case saw
    them; h_pre: the case's own first-layer pre-activation, computed by the same backend."""
    return Reference(inputs, dtype).check(got, h_pre)
