"""TensorFlow steps: one forward and backward pass of lin -> relu -> lin -> mse, made four ways.

Every step has the signature step(x, y, w1, b1, w2, b2) -> (loss, d_x, d_w1, d_b1, d_w2, d_b2)
(the order of kernels.reference.OUTPUTS), so every backend does the same, complete work.
"""
from functools import partial

import tensorflow as tf

from kernels import layers, lesson
from kernels.layers import broadcast_lin_grad, lin, mse, relu


def forward(x, y, w1, b1, w2, b2):
    return mse(lin(relu(lin(x, w1, b1)), w2, b2), y)


# The hand-written backward pass (kernels/lesson.py) over this module's TensorFlow math, and the
# lesson's first version of it, whose weight gradient materialises an (n, m, nh) tensor.
manual_step = partial(lesson.manual_step, layers)
broadcast_step = partial(lesson.manual_step, layers, weight_grad=broadcast_lin_grad)


def tape_step(x, y, w1, b1, w2, b2):
    """Autodiff of the same forward with tf.GradientTape (x is watched: its gradient is an output)."""
    with tf.GradientTape() as tape:
        tape.watch([x, w1, b1, w2, b2])
        loss = forward(x, y, w1, b1, w2, b2)
    return (loss, *tape.gradient(loss, [x, w1, b1, w2, b2]))


# The layer-class refactor (kernels/lesson.py) over the same math.
module_step = partial(lesson.module_step, layers)


def hidden_pre(x, w1, b1):
    """The first layer's pre-activation: the correctness check reads the case's ReLU mask from it."""
    return lin(x, w1, b1)


STEPS = {"manual": manual_step, "tape": tape_step, "module": module_step, "broadcast": broadcast_step}
