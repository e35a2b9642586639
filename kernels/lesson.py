"""The lesson's hand-written backward pass and its layer-class refactor, written once for every
framework and every depth: each calls the math (lin, lin_grad, relu, relu_grad, mse, mse_grad,
xent, xent_grad) of the `ops` namespace it is given (a framework's layers module or a
SimpleNamespace of its functions). A network is its parameters (w1, b1, ..., wL, bL): ReLU between
the linear layers, the loss y asks for at the end (kernels/models.py)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any

Array = Any  # a framework's array or tensor
Ops = SimpleNamespace | ModuleType


def loss(ops: Ops, out: Array, y: Array) -> Array:
    """The loss y asks for: mse against the digit's value (y of shape (n,)), cross-entropy against a
    one-hot row (y of shape (n, classes); kernels/models.py targets). A shape is static in every
    backend, so a compiled step holds one loss, not a branch."""
    return ops.mse(out, y) if len(y.shape) == 1 else ops.xent(out, y)


def loss_grad(ops: Ops, out: Array, y: Array) -> Array:
    """dL/d(out) of loss(ops, out, y)."""
    return ops.mse_grad(out, y) if len(y.shape) == 1 else ops.xent_grad(out, y)


def forward(ops: Ops, x: Array, y: Array, *params: Array, spec: "Spec | None" = None) -> Array:
    """The loss of the network of `params` (w1, b1, ..., wL, bL): lin, then relu and lin per
    further layer, or the layers of `spec` (what the autodiff steps differentiate)."""
    if spec is not None:
        for layer in layers(ops, params, spec):
            x = layer(x)
        return loss(ops, x, y)
    for k in range(0, len(params), 2):
        x = ops.lin(ops.relu(x) if k else x, params[k], params[k + 1])
    return loss(ops, x, y)


def pre_activations(ops: Ops, x: Array, *params: Array) -> tuple[Array, ...]:
    """The input of every ReLU (x @ w1 + b1, ...): the correctness check reads a case's ReLU masks
    from them (kernels/reference.py)."""
    pres = []
    for k in range(0, len(params) - 2, 2):
        x = ops.lin(ops.relu(x) if k else x, params[k], params[k + 1])
        pres.append(x)
    return tuple(pres)


def manual_step(
    ops: Ops,
    x: Array,
    y: Array,
    *params: Array,
    weight_grad: Callable[[Array, Array, Array], tuple[Array, Array, Array]] | None = None,
    spec: "Spec | None" = None,
) -> tuple[Array, ...]:
    """Loss and (d_x, d_w1, d_b1, ..., d_wL, d_bL) by the chain rule written out, layer by layer;
    `weight_grad` replaces ops.lin_grad (the broadcast step's naive weight gradient). A user's
    `spec` runs its layers' own hand-written backward passes (module_step)."""
    if spec is not None:
        return module_step(ops, x, y, *params, spec=spec)
    lin_grad = weight_grad or ops.lin_grad
    ws, bs = params[0::2], params[1::2]
    inputs, pres = [x], []  # each layer's input; each ReLU's input
    for k, (w, b) in enumerate(zip(ws, bs)):
        out = ops.lin(inputs[-1], w, b)
        if k < len(ws) - 1:
            pres.append(out)
            inputs.append(ops.relu(out))
    value = loss(ops, out, y)
    d = loss_grad(ops, out, y)
    grads: list[Array] = []
    for k in reversed(range(len(ws))):
        d, d_w, d_b = lin_grad(inputs[k], ws[k], d)
        grads[:0] = [d_w, d_b]
        if k:
            d = ops.relu_grad(pres[k - 1], d)
    return (value, d, *grads)


class Module:
    """A layer: calling it runs forward and keeps what backward needs. A user's layer subclasses it
    (kernels/models.py): forward and backward over self.ops, and `needs`, the ops it calls beyond
    array arithmetic (a framework whose ops lack one skips the model's cases, saying which).

    What backward needs is kept on the module (a Python object living for one step or one trace),
    never on tensors: `inp.g = ...` on a graph tensor runs once, at trace time, and the next call
    of a compiled step would read a stale symbolic value."""

    needs: tuple[str, ...] = ()

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


class Loss(Module):
    """The loss y asks for (loss()): mse, or cross-entropy against one-hot rows."""

    def forward(self, out: Array, y: Array) -> Array:
        return loss(self.ops, out, y)

    def backward(self, dy: Array = None) -> tuple[Array, tuple[Array, ...]]:
        return loss_grad(self.ops, *self.args), ()


class Model:
    """Layers chained into a loss; backward returns (d_input, [parameter gradients in layer order])."""

    def __init__(self, layers: list[Module], loss: Loss) -> None:
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


@dataclass(frozen=True)
class Linear:
    """A user's model names a linear layer by its shape; its weights are the step's parameters
    (kernels/models.py makes and initialises them), x @ w + b like every Lin."""

    fan_in: int
    fan_out: int


Spec = Sequence[Linear | type[Module]]  # a user's model: Linear shapes and parameter-free layers


def layers(ops: Ops, params: tuple[Array, ...], spec: Spec | None = None) -> list[Module]:
    """Lin, then Relu and Lin per further layer, from (w1, b1, ..., wL, bL); or the layers of a
    user's `spec`, each Linear taking the next two parameters."""
    out: list[Module] = []
    if spec is not None:
        k = 0
        for item in spec:
            if isinstance(item, Linear):
                out.append(Lin(ops, params[k], params[k + 1]))
                k += 2
            else:
                out.append(item(ops))
        return out
    for k in range(0, len(params), 2):
        out += [Relu(ops)] if k else []
        out.append(Lin(ops, params[k], params[k + 1]))
    return out


def module_step(ops: Ops, x: Array, y: Array, *params: Array, spec: Spec | None = None) -> tuple[Array, ...]:
    """One step of the refactored model; it is built per call, so no state outlives a step."""
    model = Model(layers(ops, params, spec), Loss(ops))
    value = model(x, y)
    d_x, grads = model.backward()
    return (value, d_x, *grads)
