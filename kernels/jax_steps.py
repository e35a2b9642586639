"""JAX steps: one forward and backward pass of the network (kernels/models.py), by hand and by
jax.value_and_grad, with the same signature and outputs as kernels.tf_steps:
step(x, y, w1, b1, ..., wL, bL) -> (loss, d_x, d_w1, d_b1, ..., d_wL, d_bL).
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


OPS = array_ops.ops(relu, relu_grad, jax.nn.log_softmax, jnp.exp, jnp.tanh)
lin = array_ops.lin


def forward(x: Array, y: Array, *params: Array, spec: lesson.Spec | None = None) -> Array:
    return array_ops.forward(OPS, x, y, *params, spec=spec)


def manual_step(x: Array, y: Array, *params: Array, spec: lesson.Spec | None = None) -> tuple[Array, ...]:
    """The lesson's hand-written backward pass (kernels/lesson.py), in jax.numpy."""
    return lesson.manual_step(OPS, x, y, *params, spec=spec)


def _loss(x: Array, params: tuple[Array, ...], y: Array, spec: lesson.Spec | None = None) -> Array:
    return forward(x, y, *params, spec=spec)


# Loss and its gradient with respect to x and every parameter (y is data).
_value_and_grad = jax.value_and_grad(_loss, argnums=(0, 1))


def grad_step(x: Array, y: Array, *params: Array, spec: lesson.Spec | None = None) -> tuple[Array, ...]:
    """Autodiff of the same forward with jax.value_and_grad."""
    loss, (d_x, d_params) = _value_and_grad(x, params, y, spec)
    return (loss, d_x, *d_params)
