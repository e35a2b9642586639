"""JAX steps: one forward and backward pass of lin -> relu -> lin -> mse, by hand and by
jax.value_and_grad, with the same signature and outputs as kernels.steps (the order of
kernels.reference.OUTPUTS). Shapes: x (n, m), y (n,), w1 (m, nh), b1 (nh,), w2 (nh, 1), b2 (1,).
Pure functions of arrays, so each runs op by op as it is or as one XLA program under jax.jit.
"""
from types import SimpleNamespace

import jax
import jax.numpy as jnp

from kernels import lesson


def lin(x, w, b):
    return x @ w + b


def lin_grad(x, w, dy):
    """(d_x, d_w, d_b) of `lin(x, w, b)` given dy = dL/d(out)."""
    return dy @ w.T, x.T @ dy, dy.sum(0)


def relu(x):
    return jax.nn.relu(x)


def relu_grad(x, dy):
    """ReLU'(0) := 0, the same convention as jax.nn.relu's derivative."""
    return jnp.where(x > 0, dy, jnp.zeros_like(dy))


def mse(out, y):
    return jnp.mean((out[:, 0] - y) ** 2)


def mse_grad(out, y):
    """dL/d(out), shape (n, 1)."""
    return 2.0 * (out - y[:, None]) / out.shape[0]


def forward(x, y, w1, b1, w2, b2):
    return mse(lin(relu(lin(x, w1, b1)), w2, b2), y)


_OPS = SimpleNamespace(lin=lin, lin_grad=lin_grad, relu=relu, relu_grad=relu_grad, mse=mse, mse_grad=mse_grad)


def manual_step(x, y, w1, b1, w2, b2):
    """The lesson's hand-written backward pass (kernels/lesson.py), in jax.numpy."""
    return lesson.manual_step(_OPS, x, y, w1, b1, w2, b2)


# Loss and its gradient with respect to x and every parameter (y, argument 1, is data).
_value_and_grad = jax.value_and_grad(forward, argnums=(0, 2, 3, 4, 5))


def grad_step(x, y, w1, b1, w2, b2):
    """Autodiff of the same forward with jax.value_and_grad."""
    loss, grads = _value_and_grad(x, y, w1, b1, w2, b2)
    return (loss, *grads)


def hidden_pre(x, w1, b1):
    """The first layer's pre-activation: the correctness check reads the case's ReLU mask from it."""
    return lin(x, w1, b1)


STEPS = {"manual": manual_step, "grad": grad_step}
