"""PyTorch steps, the lesson's original: one forward and backward pass of lin -> relu -> lin -> mse,
made three ways, with the same signature and outputs as kernels.tf_steps (the order of
kernels.reference.OUTPUTS). Shapes: x (n, m), y (n,), w1 (m, nh), b1 (nh,), w2 (nh, 1), b2 (1,).
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


OPS = array_ops.ops(relu, relu_grad)
lin = array_ops.lin


def manual_step(x: Array, y: Array, w1: Array, b1: Array, w2: Array, b2: Array) -> tuple[Array, ...]:
    """The lesson's hand-written backward pass, in torch ops; no autograd graph is recorded.

    torch.no_grad as a context inside each step, not as a decorator: a decorated step's first frame
    is the decorator's, whose code every decorated step shares, and torch.compile keeps its caches
    (and its recompile limit) per code object."""
    with torch.no_grad():
        return lesson.manual_step(OPS, x, y, w1, b1, w2, b2)


class Linear(nn.Module):
    """The lesson's linear layer as an nn.Module: out = x @ w + b, with w (m, k) and b (k,)."""

    def __init__(self, w: Array, b: Array) -> None:
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: Array) -> Array:
        return lin(x, self.w, self.b)


class Net(nn.Module):
    """The lesson's nn.Module model: layers, then F.mse_loss against the targets as a column."""

    def __init__(self, w1: Array, b1: Array, w2: Array, b2: Array) -> None:
        super().__init__()
        self.layers = [Linear(w1, b1), nn.ReLU(), Linear(w2, b2)]

    def forward(self, x: Array, y: Array) -> Array:
        for layer in self.layers:
            x = layer(x)
        return F.mse_loss(x, y[:, None])


def autograd_step(x: Array, y: Array, w1: Array, b1: Array, w2: Array, b2: Array) -> tuple[Array, ...]:
    """The lesson's model and loss.backward(). The leaves are made afresh on every call
    (detach().requires_grad_(): same storage, new autograd identity), so .grad never accumulates
    across calls and the caller's tensors are never marked as requiring grad."""
    x, w1, b1, w2, b2 = (t.detach().requires_grad_() for t in (x, w1, b1, w2, b2))
    with torch.enable_grad():
        loss = Net(w1, b1, w2, b2)(x, y)
        loss.backward()
    return loss.detach(), x.grad, w1.grad, b1.grad, w2.grad, b2.grad


def module_step(x: Array, y: Array, w1: Array, b1: Array, w2: Array, b2: Array) -> tuple[Array, ...]:
    """The layer-class refactor (kernels/lesson.py) over this module's torch math."""
    with torch.no_grad():
        return lesson.module_step(OPS, x, y, w1, b1, w2, b2)
