"""PyTorch steps, the lesson's original: one forward and backward pass of the network
(kernels/models.py) made three ways, with the same signature and outputs as kernels.tf_steps:
step(x, y, w1, b1, ..., wL, bL) -> (loss, d_x, d_w1, d_b1, ..., d_wL, d_bL).
"""

import torch
import torch.nn.functional as F
from torch import nn

from kernels import array_ops, lesson
from kernels.lesson import Array


def relu(x: Array) -> Array:
    return torch.relu(x)


def relu_grad(x: Array, dy: Array) -> Array:
    """ReLU'(0) := 0, the same convention as torch.relu's autograd (threshold_backward)."""
    return torch.where(x > 0, dy, torch.zeros_like(dy))


def log_softmax(z: Array) -> Array:
    return torch.log_softmax(z, -1)


OPS = array_ops.ops(relu, relu_grad, log_softmax, torch.exp, torch.tanh)
lin = array_ops.lin


def manual_step(x: Array, y: Array, *params: Array, spec: lesson.Spec | None = None) -> tuple[Array, ...]:
    """The lesson's hand-written backward pass, in torch ops; no autograd graph is recorded.

    torch.no_grad as a context inside each step, not as a decorator: a decorated step's first frame
    is the decorator's, whose code every decorated step shares, and torch.compile keeps its caches
    (and its recompile limit) per code object."""
    with torch.no_grad():
        return lesson.manual_step(OPS, x, y, *params, spec=spec)


class Linear(nn.Module):
    """The lesson's linear layer as an nn.Module: out = x @ w + b, with w (m, k) and b (k,)."""

    def __init__(self, w: Array, b: Array) -> None:
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: Array) -> Array:
        return lin(x, self.w, self.b)


class Net(nn.Module):
    """The lesson's nn.Module model: its layers (Linear, then ReLU and Linear per further layer),
    then F.mse_loss against the targets as a column, or F.cross_entropy against one-hot rows."""

    def __init__(self, params: tuple[Array, ...], spec: lesson.Spec | None = None) -> None:
        super().__init__()
        self.layers: list = []
        if spec is not None:  # a user's layers, forward over this module's ops
            self.layers = lesson.layers(OPS, params, spec)
            return
        for k in range(0, len(params), 2):
            self.layers += [nn.ReLU()] if k else []
            self.layers.append(Linear(params[k], params[k + 1]))

    def forward(self, x: Array, y: Array) -> Array:
        for layer in self.layers:
            x = layer(x)
        return F.mse_loss(x, y[:, None]) if y.dim() == 1 else F.cross_entropy(x, y)


def autograd_step(x: Array, y: Array, *params: Array, spec: lesson.Spec | None = None) -> tuple[Array, ...]:
    """The lesson's model and loss.backward(). The leaves are made afresh on every call
    (detach().requires_grad_(): same storage, new autograd identity), so .grad never accumulates
    across calls and the caller's tensors are never marked as requiring grad."""
    x, *leaves = (t.detach().requires_grad_() for t in (x, *params))
    with torch.enable_grad():
        loss = Net(tuple(leaves), spec)(x, y)
        loss.backward()
    return (loss.detach(), x.grad, *(p.grad for p in leaves))


def module_step(x: Array, y: Array, *params: Array, spec: lesson.Spec | None = None) -> tuple[Array, ...]:
    """The layer-class refactor (kernels/lesson.py) over this module's torch math."""
    with torch.no_grad():
        return lesson.module_step(OPS, x, y, *params, spec=spec)
