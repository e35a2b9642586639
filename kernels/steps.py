"""TensorFlow steps: one forward and backward pass of lin -> relu -> lin -> mse, made four ways.

Every step has the signature step(x, y, w1, b1, w2, b2) -> (loss, d_x, d_w1, d_b1, d_w2, d_b2)
(the order of kernels.reference.OUTPUTS), so every backend does the same, complete work.
"""
from functools import partial

import tensorflow as tf

from kernels import layers, modules
from kernels.layers import broadcast_lin_grad, lin, lin_grad, mse, mse_grad, relu, relu_grad


def forward(x, y, w1, b1, w2, b2):
    return mse(lin(relu(lin(x, w1, b1)), w2, b2), y)


def manual_step(x, y, w1, b1, w2, b2, weight_grad=lin_grad):
    """The lesson's hand-written backward pass."""
    h_pre = lin(x, w1, b1)
    h = relu(h_pre)
    out = lin(h, w2, b2)
    loss = mse(out, y)
    d_out = mse_grad(out, y)
    d_h, d_w2, d_b2 = weight_grad(h, w2, d_out)
    d_x, d_w1, d_b1 = weight_grad(x, w1, relu_grad(h_pre, d_h))
    return loss, d_x, d_w1, d_b1, d_w2, d_b2


broadcast_step = partial(manual_step, weight_grad=broadcast_lin_grad)


def tape_step(x, y, w1, b1, w2, b2):
    """Autodiff of the same forward with tf.GradientTape (x is watched: its gradient is an output)."""
    with tf.GradientTape() as tape:
        tape.watch([x, w1, b1, w2, b2])
        loss = forward(x, y, w1, b1, w2, b2)
    return (loss, *tape.gradient(loss, [x, w1, b1, w2, b2]))


# The layer-class refactor: kernels/modules.py, over this module's TensorFlow math.
module_step = partial(modules.module_step, layers)


def hidden_pre(x, w1, b1):
    """The first layer's pre-activation: the correctness check reads the case's ReLU mask from it."""
    return lin(x, w1, b1)


STEPS = {"manual": manual_step, "tape": tape_step, "module": module_step, "broadcast": broadcast_step}
