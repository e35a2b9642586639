"""NumPy steps: the lesson's hand-written backward pass and its layer classes on plain NumPy, the
baseline every comparison is asked against. Same signature and outputs as the other frameworks'
steps (the order of kernels.reference.OUTPUTS); no autodiff, no compiler, one device."""

from functools import partial

import numpy as np

from kernels import array_ops, lesson
from kernels.lesson import Array


def relu(x: Array) -> Array:
    return np.maximum(x, 0)


def relu_grad(x: Array, dy: Array) -> Array:
    """ReLU'(0) := 0, as in every other framework here."""
    return np.where(x > 0, dy, 0).astype(dy.dtype, copy=False)


OPS = array_ops.ops(relu, relu_grad)

# The steps (bench/frameworks/numpy.py names them): the hand-written backward pass and the layer classes.
manual_step = partial(lesson.manual_step, OPS)
module_step = partial(lesson.module_step, OPS)
