"""The lesson's hand-written backward pass and its layer-class refactor, written once for every
framework: each calls the math (lin, lin_grad, relu, relu_grad, mse, mse_grad) of the `ops`
namespace it is given (a framework's layers module or a SimpleNamespace of its functions)."""

from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any

Array = Any  # a framework's array or tensor
Ops = SimpleNamespace | ModuleType


def manual_step(
    ops: Ops,
    x: Array,
    y: Array,
    w1: Array,
    b1: Array,
    w2: Array,
    b2: Array,
    weight_grad: Callable[[Array, Array, Array], tuple[Array, Array, Array]] | None = None,
) -> tuple[Array, ...]:
    """Loss and (d_x, d_w1, d_b1, d_w2, d_b2) by the chain rule written out; `weight_grad`
    replaces ops.lin_grad (the broadcast step's naive weight gradient)."""
    lin_grad = weight_grad or ops.lin_grad
    h_pre = ops.lin(x, w1, b1)
    h = ops.relu(h_pre)
    out = ops.lin(h, w2, b2)
    loss = ops.mse(out, y)
    d_out = ops.mse_grad(out, y)
    d_h, d_w2, d_b2 = lin_grad(h, w2, d_out)
    d_x, d_w1, d_b1 = lin_grad(x, w1, ops.relu_grad(h_pre, d_h))
    return loss, d_x, d_w1, d_b1, d_w2, d_b2


class Module:
    """A layer: calling it runs forward and keeps what backward needs.

    What backward needs is kept on the module (a Python object living for one step or one trace),
    never on tensors: `inp.g = ...` on a graph tensor runs once, at trace time, and the next call
    of a compiled step would read a stale symbolic value."""

    def __init__(self, ops: Ops) -> None:
        self.ops = ops

    def __call__(self, *args: Array) -> Array:
        self.args = args
        return self.forward(*args)

    def forward(self, *args: Array) -> Array:
        raise NotImplementedError

    def backward(self, dy: Array) -> tuple[Array, tuple[Array, ...]]:
        """(gradient with respect to the first input, tuple of gradients of the parameters)."""
        raise NotImplementedError


class Lin(Module):
    def __init__(self, ops: Ops, w: Array, b: Array) -> None:
        super().__init__(ops)
        self.w, self.b = w, b

    def forward(self, x: Array) -> Array:
        return self.ops.lin(x, self.w, self.b)

    def backward(self, dy: Array) -> tuple[Array, tuple[Array, ...]]:
        d_x, d_w, d_b = self.ops.lin_grad(self.args[0], self.w, dy)
        return d_x, (d_w, d_b)


class Relu(Module):
    def forward(self, x: Array) -> Array:
        return self.ops.relu(x)

    def backward(self, dy: Array) -> tuple[Array, tuple[Array, ...]]:
        return self.ops.relu_grad(self.args[0], dy), ()


class Mse(Module):
    def forward(self, out: Array, y: Array) -> Array:
        return self.ops.mse(out, y)

    def backward(self, dy: Array = None) -> tuple[Array, tuple[Array, ...]]:
        return self.ops.mse_grad(*self.args), ()


class Model:
    """Layers chained into a loss; backward returns (d_input, [parameter gradients in layer order])."""

    def __init__(self, layers: list[Module], loss: Mse) -> None:
        self.layers, self.loss = layers, loss

    def __call__(self, x: Array, y: Array) -> Array:
        for layer in self.layers:
            x = layer(x)
        return self.loss(x, y)

    def backward(self) -> tuple[Array, list[Array]]:
        dy, _ = self.loss.backward()
        grads: list[Array] = []
        for layer in reversed(self.layers):
            dy, param_grads = layer.backward(dy)
            grads[:0] = param_grads
        return dy, grads


def module_step(ops: Ops, x: Array, y: Array, w1: Array, b1: Array, w2: Array, b2: Array) -> tuple[Array, ...]:
    """One step of the refactored model; it is built per call, so no state outlives a step."""
    model = Model([Lin(ops, w1, b1), Relu(ops), Lin(ops, w2, b2)], Mse(ops))
    loss = model(x, y)
    d_x, (d_w1, d_b1, d_w2, d_b2) = model.backward()
    return loss, d_x, d_w1, d_b1, d_w2, d_b2
