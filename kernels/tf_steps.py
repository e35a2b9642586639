"""TensorFlow: the lesson's layers and their gradients (pure functions of tensors), and one forward
and backward pass of the network (kernels/models.py) made five ways.

Every step has the signature step(x, y, w1, b1, ..., wL, bL) -> (loss, d_x, d_w1, d_b1, ...,
d_wL, d_bL), so every backend does the same, complete work. Shapes: x (n, m), w (m, k), b (k,),
out (n, k); y (n,) for mse, one-hot (n, k) for xent. Gradients are returned, never stored.
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


def xent(out: Array, y: Array) -> Array:
    """Mean over rows of -log softmax(out)[label]: y is the label's one-hot row."""
    return -tf.reduce_sum(y * tf.nn.log_softmax(out)) / tf.cast(tf.shape(out)[0], out.dtype)


def xent_grad(out: Array, y: Array) -> Array:
    """dL/d(out) = (softmax(out) - y) / n, shape (n, classes)."""
    return (tf.nn.softmax(out) - y) / tf.cast(tf.shape(out)[0], out.dtype)


OPS = SimpleNamespace(
    lin=lin,
    lin_grad=lin_grad,
    relu=relu,
    relu_grad=relu_grad,
    mse=mse,
    mse_grad=mse_grad,
    xent=xent,
    xent_grad=xent_grad,
    exp=tf.math.exp,
    tanh=tf.math.tanh,
)


# A user's model's layers come as the keyword `spec` (bench/frameworks/base.py step), taken here as
# **layers: a keyword-only parameter with a default makes tf.function's experimental_get_compiler_ir
# fail to bind the call ("missing a required argument"), and the counters read XLA's module through it.


def forward(x: Array, y: Array, *params: Array, **layers: Any) -> Array:
    return lesson.forward(OPS, x, y, *params, spec=layers.get("spec"))


def manual_step(x: Array, y: Array, *params: Array, **layers: Any) -> tuple[Array, ...]:
    """The hand-written backward pass (kernels/lesson.py) over this module's TensorFlow math."""
    return lesson.manual_step(OPS, x, y, *params, spec=layers.get("spec"))


def broadcast_step(x: Array, y: Array, *params: Array) -> tuple[Array, ...]:
    """The lesson's first version of the backward pass, whose weight gradients materialise an
    (n, fan-in, fan-out) tensor per layer."""
    return lesson.manual_step(OPS, x, y, *params, weight_grad=broadcast_lin_grad)


def tape_step(x: Array, y: Array, *params: Array, **layers: Any) -> tuple[Array, ...]:
    """Autodiff of the same forward with tf.GradientTape (x is watched: its gradient is an output)."""
    with tf.GradientTape() as tape:
        tape.watch([x, *params])
        loss = forward(x, y, *params, **layers)
    return (loss, *tape.gradient(loss, [x, *params]))


def module_step(x: Array, y: Array, *params: Array, **layers: Any) -> tuple[Array, ...]:
    """The layer-class refactor (kernels/lesson.py) over the same math."""
    return lesson.module_step(OPS, x, y, *params, spec=layers.get("spec"))


# ---------------------------------------------------------------- keras

_keras_models: dict[tuple[tuple[int, ...], str], Any] = {}


def _keras_model(widths, dtype):
    """The network as TensorFlow users write it: a Keras model whose weights are variables (Dense,
    then ReLU and Dense per further layer, each Dense x @ kernel + bias like `lin`). One per widths
    and dtype, made eagerly (tf.init_scope) even when first asked for inside a tf.function trace,
    since a traced function may not create variables on a later trace."""
    key = (tuple(widths), dtype.name)
    if key not in _keras_models:
        import keras

        with tf.init_scope():
            layers = []
            for k, width in enumerate(widths[1:]):
                layers += [keras.layers.ReLU(dtype=dtype.name)] if k else []
                layers.append(keras.layers.Dense(width, dtype=dtype.name))
            model = keras.Sequential(layers)
            model.build((None, widths[0]))
        _keras_models[key] = model
    return _keras_models[key]


def keras_step(x: Array, y: Array, *params: Array) -> tuple[Array, ...]:
    """The lesson's own TensorFlow refactor made to work. The lesson subclasses tf.keras.Model, keeps
    its layers in a list and asks tape.gradient(loss, self._layers), which fails (a layer is not a
    tensor). What TF users write instead: a Keras model whose weights are variables, gradients by
    tf.GradientTape over model.trainable_variables and the watched input. The variables take this
    call's weights first (two small assigns a layer), so every call answers for its own arguments;
    beside `tape`, its time shows what variables and Keras cost."""
    widths = (x.shape[1], *(w.shape[1] for w in params[0::2]))
    model = _keras_model(widths, x.dtype)
    for variable, value in zip(model.trainable_variables, params):
        variable.assign(value)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = lesson.loss(OPS, model(x), y)
    return (loss, *tape.gradient(loss, [x, *model.trainable_variables]))
