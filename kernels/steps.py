"""TensorFlow steps: one forward and backward pass of lin -> relu -> lin -> mse, made four ways.

Every step has the signature step(x, y, w1, b1, w2, b2) -> (loss, d_x, d_w1, d_b1, d_w2, d_b2)
(the order of kernels.reference.OUTPUTS), so every backend does the same, complete work.
"""
from functools import partial

import tensorflow as tf

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


class Module:
    """A layer as in the lesson's refactor: calling it runs forward and keeps what backward needs.

    What backward needs is kept on the module (a Python object living for one step or one trace),
    never on tensors: `inp.g = ...` on a graph tensor runs once, at trace time, and the next call
    of the tf.function would read a stale symbolic value."""

    def __call__(self, *args):
        self.args = args
        return self.forward(*args)

    def forward(self, *args):
        raise NotImplementedError

    def backward(self, dy):
        """(gradient with respect to the first input, tuple of gradients of the parameters)."""
        raise NotImplementedError


class Lin(Module):
    def __init__(self, w, b):
        self.w, self.b = w, b

    def forward(self, x):
        return lin(x, self.w, self.b)

    def backward(self, dy):
        d_x, d_w, d_b = lin_grad(self.args[0], self.w, dy)
        return d_x, (d_w, d_b)


class Relu(Module):
    def forward(self, x):
        return relu(x)

    def backward(self, dy):
        return relu_grad(self.args[0], dy), ()


class Mse(Module):
    def forward(self, out, y):
        return mse(out, y)

    def backward(self, dy=None):
        return mse_grad(*self.args), ()


class Model:
    """Layers chained into a loss; backward returns (d_input, [parameter gradients in layer order])."""

    def __init__(self, layers, loss):
        self.layers, self.loss = layers, loss

    def __call__(self, x, y):
        for layer in self.layers:
            x = layer(x)
        return self.loss(x, y)

    def backward(self):
        dy, _ = self.loss.backward()
        grads = []
        for layer in reversed(self.layers):
            dy, param_grads = layer.backward(dy)
            grads[:0] = param_grads
        return dy, grads


def module_step(x, y, w1, b1, w2, b2):
    """The layer-class refactor; the model is built per call, so no state outlives a step."""
    model = Model([Lin(w1, b1), Relu(), Lin(w2, b2)], Mse())
    loss = model(x, y)
    d_x, (d_w1, d_b1, d_w2, d_b2) = model.backward()
    return loss, d_x, d_w1, d_b1, d_w2, d_b2


def hidden_pre(x, w1, b1):
    """The first layer's pre-activation: the correctness check reads the case's ReLU mask from it."""
    return lin(x, w1, b1)


STEPS = {"manual": manual_step, "tape": tape_step, "module": module_step, "broadcast": broadcast_step}
