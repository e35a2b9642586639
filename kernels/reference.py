"""The float64 NumPy oracle: the network's forward and backward pass (any depth, either loss), and
the check every case must pass.

Framework-free (NumPy only), so every framework's steps are judged by the same code.
"""

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kernels import models

OUTPUTS = models.output_names(2)  # the lesson's

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
    """The lesson's w1 (m, nh), b1 (nh,), w2 (nh, 1), b2 (1,) (kernels/models.py init_params)."""
    return models.init_params((m, nh, 1), seed, dtype)


def _masks(mask, hidden):
    """A list of `hidden` masks (None: float64's own) from one array (the first layer's) or a sequence."""
    given = [] if mask is None else [mask] if isinstance(mask, np.ndarray) else list(mask)
    return (given + [None] * hidden)[:hidden]


def forward_backward(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *params: npt.ArrayLike,
    mask: np.ndarray | Sequence[np.ndarray | None] | None = None,
    keep_out: bool = False,
    h_pre: np.ndarray | None = None,
) -> dict[str, Any]:
    """Loss and gradients (models.output_names order) of the network of `params` (w1, b1, ...,
    wL, bL) in float64. mask: the first ReLU's mask, or one per ReLU (None: z > 0 in float64), in
    place of float64's own; keep_out: also the output ("_out"), dL/d(out) ("_d_out"), every ReLU's
    input ("_pres") and mask ("_masks"); h_pre: x @ w1 + b1 in float64 where known (a Reference
    keeps it). x is read in float64 a block of rows at a time (_rows). y (n,): mse; one-hot: xent."""
    x = np.asarray(x)
    y = np.asarray(y, np.float64)
    ps = [np.asarray(a, np.float64) for a in params]
    ws, bs = ps[0::2], ps[1::2]
    if h_pre is None:
        h_pre = np.empty((len(x), ws[0].shape[1]))
        for rows, xb in _rows(x):
            np.matmul(xb, ws[0], out=h_pre[rows])
        h_pre += bs[0]
    given = _masks(mask, len(ws) - 1)
    z, pres, masks = h_pre, [], []
    for k in range(1, len(ws)):
        pres.append(z)
        masks.append(z > 0 if given[k - 1] is None else given[k - 1])
        z = np.where(masks[-1], z, 0.0) @ ws[k] + bs[k]
    out, n = z, len(x)
    if y.ndim == 1:
        diff = out[:, 0] - y
        loss = np.mean(diff**2)
        d = 2.0 * diff[:, None] / n
    else:
        shifted = out - out.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -np.sum(y * log_p) / n
        d = (np.exp(log_p) - y) / n
    d_out, grads = d, list[np.ndarray]()
    for k in reversed(range(1, len(ws))):
        grads[:0] = [np.where(masks[k - 1], pres[k - 1], 0.0).T @ d, d.sum(0)]
        d = np.where(masks[k - 1], d @ ws[k].T, 0.0)
    d_w1 = np.zeros_like(ws[0])
    for rows, xb in _rows(x):
        d_w1 += xb.T @ d[rows]
    ref: dict[str, Any] = dict(zip(models.output_names(len(ws)), (loss, d @ ws[0].T, d_w1, d.sum(0), *grads)))
    if keep_out:
        ref.update(_out=out, _d_out=d_out, _pres=pres, _masks=masks)
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


def _digest(masks):
    digest = hashlib.blake2b(digest_size=16)
    for mask in masks:
        digest.update(b"own" if mask is None else np.packbits(mask).tobytes())
    return digest.digest()


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

    Deeper networks. The probe reports every ReLU's input; the reference runs under the case's
    masks, each layer's near-zero set estimated from its own rounding and what the layers before it
    pass on. The row-by-row explanation is made for one hidden layer only: deeper, a flipped entry
    moves every layer after it, and the check rests on the probe's masks alone.
    """

    def __init__(self, inputs: Iterable[np.ndarray], precision: str) -> None:
        """inputs: (x, y, w1, b1, ..., wL, bL) as the case sees them (rounded to its dtype);
        precision: its dtype's name, or "tf32"."""
        self.inputs, self.dtype = tuple(inputs), precision
        self.tolerance = TOLERANCE[precision]
        self.layers = (len(self.inputs) - 2) // 2
        self.names = models.output_names(self.layers)
        x = np.asarray(self.inputs[0])
        self._params64 = tuple(np.asarray(a, np.float64) for a in self.inputs[1:])
        w1, b1 = self._params64[1:3]
        # x @ w1 + b1 and |x| @ |w1|, x read a block of rows at a time in float64 (_rows)
        self.h_pre64, abs_product = np.empty((len(x), w1.shape[1])), np.empty((len(x), w1.shape[1]))
        for rows, xb in _rows(x):
            np.matmul(xb, w1, out=self.h_pre64[rows])
            np.matmul(np.abs(xb, out=xb), np.abs(w1), out=abs_product[rows])
        self.h_pre64 += b1
        # the sums of x @ w1 (in the accumulating precision), then the product and the bias added
        # in the case's own dtype: where |h_pre| is within this of zero, either sign is right
        bound = self._bound(x.shape[1], abs_product, self.h_pre64, b1)
        self.near_zero = np.abs(self.h_pre64) <= bound
        self._bound1 = bound if self.layers > 2 else None  # deeper layers' bounds start from it
        self.mask64 = self.h_pre64 > 0
        self._refs: dict[bytes, dict[str, Any]] = {}
        self.masks64 = self.outputs([None] * (self.layers - 1))["_masks"]

    def _bound(self, fan_in, abs_product, z, b):
        """How far rounding in the case's precision can move z = h @ w + b from float64's, given
        abs_product = |h| @ |w| (h exact)."""
        u_sum, u_own = UNIT_ROUNDOFF[ACCUMULATE[self.dtype]], UNIT_ROUNDOFF[self.dtype]
        return 2 * (fan_in + 1) * u_sum * (abs_product + np.abs(b)) + 2 * u_own * (np.abs(z - b) + np.abs(b))

    def outputs(self, mask: np.ndarray | Sequence[np.ndarray | None] | None) -> dict[str, Any]:
        """The float64 outputs under the ReLU masks `mask` (the first layer's, or one per ReLU; None:
        float64's own), with "_out", "_d_out", "_pres", "_masks" and each ReLU's near-zero set
        ("_near"), kept for reuse."""
        masks = _masks(mask, self.layers - 1)
        key = _digest(masks)
        if key not in self._refs:
            if len(self._refs) >= 2:  # bounded: a reference at n = 1e6 is several GB
                self._refs.pop(next(iter(self._refs)))
            ref = forward_backward(self.inputs[0], *self._params64, mask=masks, keep_out=True, h_pre=self.h_pre64)
            ref["_near"] = self._near(ref["_pres"], ref["_masks"])
            self._refs[key] = self._refs[_digest(ref["_masks"])] = ref
        return self._refs[key]

    def _near(self, pres, masks):
        """Each ReLU's near-zero set: the first layer's bound (__init__); past it, each layer's own
        rounding bound plus the root-sum-square of the last one's through the weights (errors of
        independent sign; the worst case grows with the weights' absolute sums at every layer and
        would excuse every entry of a deep network)."""
        near, bound = [self.near_zero] if pres else [], None
        for k in range(1, len(pres)):
            w, b = self._params64[1 + 2 * k : 3 + 2 * k]
            h = np.where(masks[k - 1], pres[k - 1], 0.0)
            bound = self._bound1 if bound is None else bound
            assert bound is not None  # made in __init__ for a network this deep
            own = self._bound(w.shape[0], np.abs(h) @ np.abs(w), pres[k], b)
            bound = own + np.sqrt(np.square(bound) @ np.square(w))
            near.append(np.abs(pres[k]) <= bound)
        return near

    def _errors(self, got, ref):
        errors, problem = {}, None
        for name in self.names:
            r = ref[name]
            if name not in got:
                problem = problem or f"{name} is missing from the step's outputs"
                errors[name] = float("inf")
                continue
            if np.shape(got[name]) != r.shape:
                problem = problem or f"{name} has shape {np.shape(got[name])}, expected {r.shape}"
                errors[name] = float("inf")
                continue
            scale, diff = _norms(got[name], r)
            errors[name] = float(diff / scale) if scale > 0 else float(diff)
        return errors, problem

    def _explained(self, d_x, mask, ref):
        """`mask` with the near-zero entries flipped whose flip brings the case's d_x closer to the
        reference's, row by row (greedy; a row holds a handful of such entries at most). One
        hidden layer only: deeper, a flip moves every layer after it."""
        _, w1, _, w2, _ = self._params64
        rows, cols = np.nonzero(self.near_zero)
        d_out = ref["_d_out"]
        mask = mask.copy()
        residual = {}
        for i, j in zip(rows.tolist(), cols.tolist()):
            if i not in residual:
                residual[i] = np.asarray(d_x[i], np.float64) - ref["d_x"][i]
            # flipping a kept entry takes g * w1[:, j] out of the reference's row, a dropped one puts it in
            move = (-1.0 if mask[i, j] else 1.0) * float(d_out[i] @ w2[j]) * w1[:, j]
            after = residual[i] - move
            if after @ after < residual[i] @ residual[i]:
                residual[i] = after
                mask[i, j] = not mask[i, j]
        return mask

    def check(
        self, got: Mapping[str, npt.ArrayLike], h_pre: npt.ArrayLike | Sequence[npt.ArrayLike] | None = None
    ) -> Check:
        """got: {name: array} for every name of self.names; h_pre: the case's own input of every
        ReLU (the first's alone: the others are float64's), computed by the same backend (its ReLU
        masks), or None for float64's."""
        masks: list[np.ndarray | None] = [None] * (self.layers - 1)
        problem = None
        if h_pre is not None:
            given = [h_pre] if not isinstance(h_pre, (tuple, list)) else list(h_pre)
            for k, pre in enumerate(given[: len(masks)]):
                mask = np.asarray(pre) > 0
                masks[k] = mask
                if mask.shape != self.masks64[k].shape:
                    problem = f"the ReLU mask has shape {mask.shape}, expected {self.masks64[k].shape}"
                    masks = [None] * len(masks)
                    break
        ref = self.outputs(masks)
        far = sum(
            int((m != (pre > 0))[~near].sum())
            for m, pre, near in zip(masks, ref["_pres"], ref["_near"])
            if m is not None
        )
        if far and problem is None:
            problem = f"ReLU mask differs from float64 at {far} entries that are not near zero"
        errors, shape_problem = self._errors(got, ref)
        problem = problem or shape_problem
        used = ref["_masks"]
        sensitive = [k for k in MASK_SENSITIVE if k in errors]
        if (
            problem is None
            and self.layers == 2
            and self.near_zero.any()
            and not all(errors[k] <= self.tolerance for k in sensitive)
        ):
            explained = self._explained(got["d_x"], used[0], ref)
            if (explained != used[0]).any():
                ref = self.outputs([explained])
                used = ref["_masks"]
                errors, _ = self._errors(got, ref)
        worst = max(errors, key=errors.get)
        if problem is None and not errors[worst] <= self.tolerance:  # `not <=` also catches NaN
            problem = (
                f"{worst} relative error {errors[worst]:.2e} exceeds the {self.dtype} tolerance {self.tolerance:.0e}"
            )
        flips = sum(int((a != b).sum()) for a, b in zip(used, self.masks64))
        return Check(errors, errors[worst], self.tolerance, flips, problem)


class Evaluated:
    """The float64 oracle of a user's model (kernels/models.py): its own layers' forward and
    hand-written backward run by NumPy in float64 on the case's inputs (whose backward the
    harness checked against finite differences when it loaded the model). No ReLU mask is read:
    a near-zero entry of a ReLU in a user's model has no allowance."""

    def __init__(self, inputs: Iterable[np.ndarray], precision: str, spec: Sequence) -> None:
        from kernels import lesson, numpy_steps

        self.inputs, self.dtype = tuple(inputs), precision
        self.tolerance = TOLERANCE[precision]
        self.names = models.output_names((len(self.inputs) - 2) // 2)
        inputs64 = [np.asarray(a, np.float64) for a in self.inputs]
        self.ref = dict(zip(self.names, lesson.module_step(numpy_steps.OPS, *inputs64, spec=spec)))

    def check(self, got: Mapping[str, npt.ArrayLike], h_pre: Any = None) -> Check:
        errors: dict[str, float] = {}
        problem = None
        for name in self.names:
            r = np.asarray(self.ref[name])
            shape = np.shape(got[name]) if name in got else None
            if shape != r.shape:
                problem = problem or f"{name} has shape {shape}, expected {r.shape}"
                errors[name] = float("inf")
                continue
            scale, diff = _norms(got[name], r)
            errors[name] = float(diff / scale) if scale > 0 else float(diff)
        worst = max(errors, key=lambda k: errors[k])
        if problem is None and not errors[worst] <= self.tolerance:
            problem = (
                f"{worst} relative error {errors[worst]:.2e} exceeds the {self.dtype} tolerance {self.tolerance:.0e}"
            )
        return Check(errors, errors[worst], self.tolerance, 0, problem)


def check(
    got: Mapping[str, npt.ArrayLike], inputs: Iterable[np.ndarray], dtype: str, h_pre: npt.ArrayLike | None = None
) -> Check:
    """Compare a case's outputs with the float64 reference on the same inputs (see Reference).

    got: {name: array} for every output (models.output_names); inputs: (x, y, w1, b1, ..., wL, bL)
    as the case saw them; h_pre: the case's own ReLU inputs (or the first's), by the same backend."""
    return Reference(inputs, dtype).check(got, h_pre)
