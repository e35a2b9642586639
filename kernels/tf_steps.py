"""TensorFlow: the lesson's layers and their gradients (pure functions of tensors), and one forward
and backward pass of lin -> relu -> lin -> mse made five ways.

Every step has the signature step(x, y, w1, b1, w2, b2) -> (loss, d_x, d_w1, d_b1, d_w2, d_b2)
(the order of kernels.reference.OUTPUTS), so every backend does the same, complete work.
Shapes: x (n, m), w (m, k), b (k,), out (n, 1), y (n,). Gradients are returned, never stored.
"""

from types import SimpleNamespace
from typing import Any

import tensorflow as tf

from kernels import lesson
from kernels.lesson import Array


def lin(x: Array, w: Array, b: Array) -> Array:
    return tf.linalg.matmul(x, w) + b


def lin_grad(x: Array, w: Array, dy: Array) -> tuple[Array, Array, Array]:
    """(d_x, d_w, d_b) of `lin(x, w, b)` given dy = dL/d(out).

    transpose_a/b rather than tf.transpose, so eager and graph do the same work (Grappler would
    fold an explicit transpose away in graphs only)."""
    return (tf.linalg.matmul(dy, w, transpose_b=True), tf.linalg.matmul(x, dy, transpose_a=True), tf.reduce_sum(dy, 0))


def broadcast_lin_grad(x: Array, w: Array, dy: Array) -> tuple[Array, Array, Array]:
    """The lesson's first weight gradient: materialises an (n, m, k) tensor before summing over n."""
    return (
        tf.linalg.matmul(dy, w, transpose_b=True),
        tf.reduce_sum(x[:, :, None] * dy[:, None, :], 0),
        tf.reduce_sum(dy, 0),
    )


def relu(x: Array) -> Array:
    return tf.nn.relu(x)


def relu_grad(x: Array, dy: Array) -> Array:
    """dy where x > 0, else 0: ReLU'(0) := 0, the same convention as tf.nn.relu's gradient.

    ReluGrad computes exactly that in one pass over (n, nh); tf.where(x > 0, dy, zeros_like(dy))
    takes three ops and three passes, which made manual/function measurably slower than tape."""
    return tf.raw_ops.ReluGrad(gradients=dy, features=x)


def mse(out: Array, y: Array) -> Array:
    return tf.reduce_mean(tf.square(out[:, 0] - y))


def mse_grad(out: Array, y: Array) -> Array:
    """dL/d(out), shape (n, 1)."""
    n = tf.cast(tf.shape(out)[0], out.dtype)
    return 2.0 * (out - y[:, None]) / n


OPS = SimpleNamespace(lin=lin, lin_grad=lin_grad, relu=relu, relu_grad=relu_grad, mse=mse, mse_grad=mse_grad)


def forward(x: Array, y: Array, w1: Array, b1: Array, w2: Array, b2: Array) -> Array:
    return mse(lin(relu(lin(x, w1, b1)), w2, b2), y)


def manual_step(x: Array, y: Array, w1: Array, b1: Array, w2: Array, b2: Array) -> tuple[Array, ...]:
    """The hand-written backward pass (kernels/lesson.py) over this module's TensorFlow math."""
    return lesson.manual_step(OPS, x, y, w1, b1, w2, b2)


def broadcast_step(x: Array, y: Array, w1: Array, b1: Array, w2: Array, b2: Array) -> tuple[Array, ...]:
    """The lesson's first version of the backward pass, whose weight gradient materialises an
    (n, m, nh) tensor."""
    return lesson.manual_step(OPS, x, y, w1, b1, w2, b2, weight_grad=broadcast_lin_grad)


def tape_step(x: Array, y: Array, w1: Array, b1: Array, w2: Array, b2: Array) -> tuple[Array, ...]:
    """Autodiff of the same forward with tf.GradientTape (x is watched: its gradient is an output)."""
    with tf.GradientTape() as tape:
        tape.watch([x, w1, b1, w2, b2])
        loss = forward(x, y, w1, b1, w2, b2)
    return (loss, *tape.gradient(loss, [x, w1, b1, w2, b2]))


def module_step(x: Array, y: Array, w1: Array, b1: Array, w2: Array, b2: Array) -> tuple[Array, ...]:
    """The layer-class refactor (kernels/lesson.py) over the same math."""
    return lesson.module_step(OPS, x, y, w1, b1, w2, b2)


# ---------------------------------------------------------------- keras

_keras_models: dict[tuple[int, int, str], Any] = {}


def _keras_model(m, nh, dtype):
    """The lesson's network as TensorFlow users write it: a Keras model whose weights are variables
    (Dense(nh) -> ReLU -> Dense(1), each Dense x @ kernel + bias like `lin`). One per shape and
    dtype, made eagerly (tf.init_scope) even when first asked for inside a tf.function trace, since
    a traced function may not create variables on a later trace."""
    key = (m, nh, dtype.name)
    if key not in _keras_models:
        import keras

        with tf.init_scope():
            model = keras.Sequential(
                [
                    keras.layers.Dense(nh, dtype=dtype.name),
                    keras.layers.ReLU(dtype=dtype.name),
                    keras.layers.Dense(1, dtype=dtype.name),
                ]
            )
            model.build((None, m))
        _keras_models[key] = model
    return _keras_models[key]


def keras_step(x: Array, y: Array, w1: Array, b1: Array, w2: Array, b2: Array) -> tuple[Array, ...]:
    """The lesson's own TensorFlow refactor made to work. The lesson subclasses tf.keras.Model, keeps
    its layers in a list and asks tape.gradient(loss, self._layers), which fails (a layer is not a
    tensor). What TF users write instead: a Keras model whose weights are variables, gradients by
    tf.GradientTape over model.trainable_variables and the watched input. The variables take this
    call's weights first (four small assigns), so every call answers for its own arguments; beside
    `tape`, its time shows what variables and Keras cost."""
    model = _keras_model(x.shape[1], w1.shape[1], x.dtype)
    for variable, value in zip(model.trainable_variables, (w1, b1, w2, b2)):
        variable.assign(value)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = mse(model(x), y)
    return (loss, *tape.gradient(loss, [x, *model.trainable_variables]))
