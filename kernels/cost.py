"""Analytic work of one step: FLOPs, the least bytes it must move, and the memory it needs.

Framework-free. n rows; the network's widths (input, hidden..., output), the lesson's (m, nh, 1)
unless `widths` is given (kernels/models.py); `itemsize` in bytes.
"""

from collections.abc import Sequence


def _layers(m: int, nh: int, widths: Sequence[int] | None) -> list[tuple[int, int]]:
    w = tuple(widths) if widths else (m, nh, 1)
    return list(zip(w, w[1:]))


def flops(step: str, n: int, m: int, nh: int, widths: Sequence[int] | None = None) -> int:
    """Floating-point operations of one forward and backward pass.

    A linear layer of fan-in a and fan-out b does three (n x a x b) products (forward, its input's
    gradient, its weight's): 6*n*a*b, and a bias add and a bias-gradient sum: 2*n*b. Each ReLU and
    its mask: 2*n*b. The loss and its gradient: about 6 per row for mse, 8 per output for the
    softmax cross-entropy. The lesson: 6*n*m*nh + 10*n*nh + 8*n. The broadcast step does the same
    arithmetic (a multiply and an add per element of its n x a x b tensor)."""
    layers = _layers(m, nh, widths)
    out = layers[-1][1]
    matmuls = sum(6 * n * a * b + 2 * n * b for a, b in layers)
    relus = sum(2 * n * b for _, b in layers[:-1])
    return matmuls + relus + (6 * n if out == 1 else 8 * n * out)


def gemms(n: int, m: int, nh: int, widths: Sequence[int] | None = None) -> tuple[tuple[int, int, int], ...]:
    """The matrix products (rows, inner, columns) of the forward and backward pass at this size,
    whichever way a step computes them: per layer x @ w forward, d_w = x.T @ d_out and
    d_x = d_out @ w.T backward (the lesson's: x @ w1, h @ w2, h.T @ d_out, d_out @ w2.T, x.T @ g,
    g @ w1.T). Their shapes are skinny (the widths are small beside n), far from the square
    product a device's peak is measured on."""
    layers = _layers(m, nh, widths)
    forward = [(n, a, b) for a, b in layers]
    backward = [s for a, b in reversed(layers) for s in ((a, n, b), (n, b, a))]
    return tuple(forward + backward)


def parameters(m: int, nh: int, widths: Sequence[int] | None = None) -> int:
    return sum(a * b + b for a, b in _layers(m, nh, widths))


def min_bytes(step: str, n: int, m: int, nh: int, itemsize: int, widths: Sequence[int] | None = None) -> int:
    """Bytes any implementation must move: read x and y, write d_x, read and write the parameters
    and their gradients once. (Intermediates could stay in cache or registers.)"""
    layers = _layers(m, nh, widths)
    first, out = layers[0][0], layers[-1][1]
    return itemsize * (2 * n * first + n * out + 2 * parameters(m, nh, widths))


def memory_bytes(step: str, n: int, m: int, nh: int, itemsize: int, widths: Sequence[int] | None = None) -> int:
    """A working-set estimate, used to skip a case that would not fit before running it.

    Every step holds x, d_x and about six (n, width) intermediates per hidden layer (its input
    and output, their gradients, the mask, a temporary); the broadcast step also builds its
    (n, fan-in, fan-out) product for one layer at a time (and autodiff of it would keep more)."""
    layers = _layers(m, nh, widths)
    first, out = layers[0][0], layers[-1][1]
    working = 2 * n * first + sum(6 * n * b for _, b in layers[:-1]) + 2 * parameters(m, nh, widths) + 4 * n * out
    if step == "broadcast":
        working += max(n * a * b + n * b for a, b in layers)
    return itemsize * working


def problem_bytes(n: int, m: int, nh: int, itemsize: int, widths: Sequence[int] | None = None) -> int:
    """The arrays a size brings before any case runs: the data (x and y) in the cases' dtype, and
    the float64 reference's own inputs, outputs (d_x is as large as x) and (n, width)
    intermediates, which every case of the size is checked against."""
    layers = _layers(m, nh, widths)
    first, out = layers[0][0], layers[-1][1]
    hidden = sum(6 * n * b for _, b in layers[:-1])
    return itemsize * (n * first + n * out) + 8 * (2 * n * first + hidden + 4 * n * out)
