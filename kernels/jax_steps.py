"""JAX steps: one forward and backward pass of lin -> relu -> lin -> mse, by hand and by
jax.value_and_grad, with the same signature and outputs as kernels.tf_steps (the order of
kernels.reference.OUTPUTS). Shapes: x (n, m), y (n,), w1 (m, nh), b1 (nh,), w2 (nh, 1), b2 (1,).
Pure functions of arrays, so each runs op by op as it is or as one XLA program under jax.jit.
"""

import jax
import jax.numpy as jnp

from kernels import array_ops, lesson
from kernels.lesson import Array


def relu(x: Array) -> Array:
    return jax.nn.relu(x)


def relu_grad(x: Array, dy: Array) -> Array:
    """ReLU'(0) := 0, the same convention as jax.nn.relu's derivative."""
    return jnp.where(x > 0, dy, jnp.zeros_like(dy))


OPS = array_ops.ops(relu, relu_grad)
lin = array_ops.lin


def forward(x: Array, y: Array, w1: Array, b1: Array, w2: Array, b2: Array) -> Array:
    return array_ops.forward(OPS, x, y, w1, b1, w2, b2)


def manual_step(x: Array, y: Array, w1: Array, b1: Array, w2: Array, b2: Array) -> tuple[Array, ...]:
    """The lesson's hand-written backward pass (kernels/lesson.py), in jax.numpy."""
    return lesson.manual_step(OPS, x, y, w1, b1, w2, b2)


# Loss and its gradient with respect to x and every parameter (y, argument 1, is data).
_value_and_grad = jax.value_and_grad(forward, argnums=(0, 2, 3, 4, 5))


def grad_step(x: Array, y: Array, w1: Array, b1: Array, w2: Array, b2: Array) -> tuple[Array, ...]:
    """Autodiff of the same forward with jax.value_and_grad."""
    loss, grads = _value_and_grad(x, y, w1, b1, w2, b2)
    return (loss, *grads)
