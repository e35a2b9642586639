"""NumPy steps: the lesson's hand-written backward pass and its layer classes on plain NumPy, the
baseline every comparison is asked against. Same signature and outputs as the other frameworks'
steps (step(x, y, *params), kernels/models.py); no autodiff, no compiler, one device."""

from functools import partial

import numpy as np

from kernels import array_ops, lesson
from kernels.lesson import Array


def relu(x: Array) -> Array:
    return np.maximum(x, 0)


def relu_grad(x: Array, dy: Array) -> Array:
    """ReLU'(0) := 0, as in every other framework here."""
    return np.where(x > 0, dy, 0).astype(dy.dtype, copy=False)


def log_softmax(z: Array) -> Array:
    """Over the last axis, the largest entry subtracted first so exp cannot overflow."""
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


OPS = array_ops.ops(relu, relu_grad, log_softmax, np.exp, np.tanh)

# The steps (bench/frameworks/numpy.py names them): the hand-written backward pass and the layer classes.
manual_step = partial(lesson.manual_step, OPS)
module_step = partial(lesson.module_step, OPS)
