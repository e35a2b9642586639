"""The lesson's layer math for array libraries with NumPy's operators (@, .T, .sum, .mean): PyTorch,
JAX and NumPy share it, each adding its own relu, relu_grad and log_softmax (ops()). Pure
functions, no state.

Shapes: x (n, m), w (m, k), b (k,), out (n, k); y (n,) for mse (k = 1), one-hot (n, k) for xent.
Gradients are returned, never stored."""

from collections.abc import Callable
from types import SimpleNamespace

from kernels import lesson
from kernels.lesson import Array, Ops


def lin(x: Array, w: Array, b: Array) -> Array:
    return x @ w + b


def lin_grad(x: Array, w: Array, dy: Array) -> tuple[Array, Array, Array]:
    """(d_x, d_w, d_b) of `lin(x, w, b)` given dy = dL/d(out)."""
    return dy @ w.T, x.T @ dy, dy.sum(0)


def mse(out: Array, y: Array) -> Array:
    return ((out[:, 0] - y) ** 2).mean()


def mse_grad(out: Array, y: Array) -> Array:
    """dL/d(out), shape (n, 1)."""
    return 2.0 * (out - y[:, None]) / out.shape[0]


def forward(ops: Ops, x: Array, y: Array, *params: Array, spec: lesson.Spec | None = None) -> Array:
    """The loss of the network of `params` (what autodiff steps differentiate)."""
    return lesson.forward(ops, x, y, *params, spec=spec)


def ops(
    relu: Callable[[Array], Array],
    relu_grad: Callable[[Array, Array], Array],
    log_softmax: Callable[[Array], Array],
    exp: Callable[[Array], Array],
    tanh: Callable[[Array], Array],
) -> SimpleNamespace:
    """The namespace kernels.lesson's steps take: this module's math with a library's ReLU, its
    log-softmax over the last axis, and its exp and tanh (for a user's layers)."""

    def xent(out: Array, y: Array) -> Array:
        """Mean over rows of -log softmax(out)[label]: y is the label's one-hot row."""
        return -(y * log_softmax(out)).sum() / out.shape[0]

    def xent_grad(out: Array, y: Array) -> Array:
        """dL/d(out) = (softmax(out) - y) / n, shape (n, classes)."""
        return (exp(log_softmax(out)) - y) / out.shape[0]

    return SimpleNamespace(
        lin=lin,
        lin_grad=lin_grad,
        relu=relu,
        relu_grad=relu_grad,
        mse=mse,
        mse_grad=mse_grad,
        xent=xent,
        xent_grad=xent_grad,
        exp=exp,
        tanh=tanh,
    )
