"""The lesson's layer math for array libraries with NumPy's operators (@, .T, .sum, .mean): PyTorch,
JAX and NumPy share it, each adding its own relu and relu_grad (ops()). Pure functions, no state.

Shapes: x (n, m), w (m, k), b (k,), out (n, 1), y (n,). Gradients are returned, never stored."""

from collections.abc import Callable
from types import SimpleNamespace

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


def forward(ops: Ops, x: Array, y: Array, w1: Array, b1: Array, w2: Array, b2: Array) -> Array:
    """The loss of the lesson's network (what autodiff steps differentiate)."""
    return ops.mse(ops.lin(ops.relu(ops.lin(x, w1, b1)), w2, b2), y)


def ops(relu: Callable[[Array], Array], relu_grad: Callable[[Array, Array], Array]) -> SimpleNamespace:
    """The namespace kernels.lesson's steps take: this module's math with a library's ReLU."""
    return SimpleNamespace(lin=lin, lin_grad=lin_grad, relu=relu, relu_grad=relu_grad, mse=mse, mse_grad=mse_grad)
