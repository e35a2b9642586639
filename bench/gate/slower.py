"""Test-only: a step made to do about 25% more work, for measuring the gate's detection rate. Never
in the shipped kernels: `gate --rates` (bench/gate/experiments.py) copies this file into a candidate
tree only, and rebinds that tree's manual step to it."""

from collections.abc import Callable
from typing import Any

import tensorflow as tf


def slower(step: Callable[..., tuple[Any, ...]], fraction: float = 0.75) -> Callable[..., tuple[Any, ...]]:
    """`step` plus one (fraction*n x m) @ (m x nh) matmul: with fraction 0.75, a quarter more than the
    step's three n x m x nh matmuls. The loss depends on the extra result without changing its value
    (is_nan of a finite sum is false), so neither Grappler nor XLA can drop it."""

    def slower_step(x, y, *params):
        loss, *grads = step(x, y, *params)
        rows = int(x.shape[0] * fraction)
        extra = tf.reduce_sum(tf.linalg.matmul(x[:rows], params[0]))
        return (tf.where(tf.math.is_nan(extra), loss + 1, loss), *grads)

    return slower_step
