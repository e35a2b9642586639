"""Analytic work of one step: FLOPs, the least bytes it must move, and the memory it needs.

Framework-free. n rows, m inputs, nh hidden units, one output; `itemsize` in bytes.
"""


def flops(step: str, n: int, m: int, nh: int) -> int:
    """Floating-point operations of one forward and backward pass.

    Layer 1 does three (n x m x nh) products (forward, d_x, d_w1): 6*n*m*nh. Layer 2 does three
    (n x nh x 1) products: 6*n*nh. Elementwise: bias add, ReLU, ReLU mask, d_b1 sum: 4*n*nh;
    the output bias, loss and its gradient: about 8*n. The broadcast step does the same
    arithmetic (a multiply and an add per element of its n x m x nh tensor)."""
    return 6 * n * m * nh + 10 * n * nh + 8 * n


def gemms(n: int, m: int, nh: int) -> tuple[tuple[int, int, int], ...]:
    """The matrix products (rows, inner, columns) of the lesson's forward and backward pass at this
    size, whichever way a step computes them: x @ w1 and h @ w2 forward; d_w2 = h.T @ d_out,
    d_h = d_out @ w2.T, d_w1 = x.T @ g and d_x = g @ w1.T backward. Their shapes are skinny (m and
    nh are small beside n), far from the square product a device's peak is measured on."""
    return ((n, m, nh), (n, nh, 1), (nh, n, 1), (n, 1, nh), (m, n, nh), (n, nh, m))


def min_bytes(step: str, n: int, m: int, nh: int, itemsize: int) -> int:
    """Bytes any implementation must move: read x and y, write d_x, read and write the parameters
    and their gradients once. (Intermediates could stay in cache or registers.)"""
    params = m * nh + nh + nh + 1
    return itemsize * (2 * n * m + n + 2 * params)


def memory_bytes(step: str, n: int, m: int, nh: int, itemsize: int) -> int:
    """A working-set estimate, used to skip a case that would not fit before running it.

    Every step holds x, d_x and about six (n, nh) intermediates; the broadcast step also builds
    its (n, m, nh) product (and autodiff of it would keep more)."""
    working = 2 * n * m + 6 * n * nh + 2 * (m * nh + 2 * nh + 1) + 4 * n
    if step == "broadcast":
        working += n * m * nh + n * nh
    return itemsize * working


def problem_bytes(n: int, m: int, nh: int, itemsize: int) -> int:
    """The arrays a size brings before any case runs: the data (x and y) in the cases' dtype, and
    the float64 reference's own inputs, outputs (d_x is as large as x) and (n, nh) intermediates,
    which every case of the size is checked against."""
    return itemsize * (n * m + n) + 8 * (2 * n * m + 6 * n * nh + 4 * n)
