"""A workload of your own: the lesson's network with a new layer, Tanh, between its linear layers.

    python -m bench run --model examples/tanh_model.py:TANH_MLP --size 5000,784,50
    python -m bench run --model examples/tanh_model.py:TANH_CLASSIFIER --loss xent

A model is a list of Linear(fan_in, fan_out) shapes, whose weights the harness makes (He-scaled,
seeded) and passes to every step, and layer classes: a subclass of kernels.lesson.Module with a
forward and its hand-written backward over `self.ops`, the namespace each framework's kernels
give (array arithmetic works everywhere; `needs` names the ops it calls beyond it, and a framework
whose ops lack one skips the model's cases, saying which). The harness checks the backward against
finite differences of the forward when it loads the model, then holds every framework's steps to
the float64 NumPy evaluation of these same layers: manual and module run your backward, tape,
grad and autograd differentiate your forward.
"""

from kernels.lesson import Linear, Module, Relu


class Tanh(Module):
    """y = tanh(x); dL/dx = dL/dy * (1 - y^2), from the output kept by forward."""

    needs = ("tanh",)

    def forward(self, x):
        self.y = self.ops.tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1.0 - self.y * self.y), ()


TANH_MLP = [Linear(784, 50), Tanh, Linear(50, 1)]
TANH_CLASSIFIER = [Linear(784, 128), Tanh, Linear(128, 64), Relu, Linear(64, 10)]
