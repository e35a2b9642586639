"""Which network a case runs: its layer widths and its loss, named so a case key can carry them.

Framework-free. A model is named by text: "lesson" (the lesson's m -> nh -> 1, its widths taken
from the size) or "mlp:W0,W1,...,WL" (any depth and widths, ReLU between the linear layers). A loss
is "mse" (the lesson's regression on the digit's value, one output) or "xent" (log-softmax and
negative log-likelihood over CLASSES digits: the last width becomes CLASSES).

Parameters are a flat tuple (w1, b1, ..., wL, bL), wk of shape (fan-in, fan-out); every step takes
step(x, y, *params) and returns (loss, d_x, d_w1, d_b1, ..., d_wL, d_bL) (output_names()).
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

LESSON = "lesson"
LOSSES = ("mse", "xent")
CLASSES = 10
MAX_LAYERS = 256  # a widths list longer than this is a typo, not a network


class ModelError(ValueError):
    """A model or loss name makes no sense; str() is one line naming the problem."""


def parse(name: str) -> str:
    """The canonical name of model `name` ("lesson" or "mlp:784,256,1"); ModelError naming the
    problem. Checked before any framework loads."""
    name = name.strip()
    if name == LESSON:
        return LESSON
    kind, sep, spec = name.partition(":")
    if kind != "mlp" or not sep:
        raise ModelError(f"unknown model {name!r} (available: lesson, mlp:W0,W1,...,WL)")
    parts = spec.split(",")
    if len(parts) < 2:
        raise ModelError(f"bad model {name!r}: an mlp needs at least two widths, its input and its output")
    if len(parts) > MAX_LAYERS + 1:
        raise ModelError(f"bad model {name!r}: {len(parts) - 1} layers, at most {MAX_LAYERS}")
    try:
        widths = [int(p) for p in parts]
    except ValueError:
        raise ModelError(f"bad model {name!r}: widths must be whole numbers separated by commas") from None
    if min(widths) < 1:
        raise ModelError(f"bad model {name!r}: every width must be at least 1")
    return "mlp:" + ",".join(map(str, widths))


def check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ModelError(f"unknown loss {loss!r} (available: {', '.join(LOSSES)})")
    return loss


def widths(model: str, m: int, nh: int, loss: str = "mse") -> tuple[int, ...]:
    """The layer widths (input, hidden..., output) of `model` at a size's m and nh, with `loss`:
    the lesson's (m, nh, 1); an mlp's own, whose first must be m (the data's columns). mse needs
    one output (the digit's value); xent makes the last width CLASSES."""
    if model == LESSON:
        out: tuple[int, ...] = (m, nh, 1)
    else:
        out = _mlp(model)
        if out[0] != m:
            raise ModelError(f"model {model} takes {out[0]} inputs, but the data has m={m} columns")
    if loss == "xent":
        return (*out[:-1], CLASSES)
    if out[-1] != 1:
        raise ModelError(f"model {model} has {out[-1]} outputs; the mse loss fits one (the digit's value)")
    return out


def hidden_width(model: str, nh: int) -> int:
    """The width a case key records as nh: the lesson's nh, an mlp's first hidden width (its input
    width where it has no hidden layer)."""
    if model == LESSON:
        return nh
    w = _mlp(model)
    return w[1] if len(w) > 2 else w[0]


def _mlp(model: str) -> tuple[int, ...]:
    """An mlp's widths as its name gives them."""
    return tuple(int(v) for v in parse(model).partition(":")[2].split(","))


def at_depth(model: str, depth: int, m: int, nh: int) -> str:
    """`model` with `depth` hidden layers of its (first) hidden width: the lesson at depth d is
    mlp:m,nh x d,1; an mlp keeps its input and output widths."""
    if depth < 1:
        raise ModelError(f"bad depth {depth}: a depth is the number of hidden layers, at least 1")
    if model == LESSON:
        first, hidden, last = m, nh, 1
    else:
        w = _mlp(model)
        if len(w) < 3:
            raise ModelError(f"model {model} has no hidden layer whose width a depth could repeat")
        first, hidden, last = w[0], w[1], w[-1]
    return "mlp:" + ",".join(map(str, (first, *[hidden] * depth, last)))


def variants(model: str, depths: Sequence[int], m: int, nh: int) -> list[str]:
    """The models a run asks for by `model` at a size's m and nh: the model at each of `depths`, or
    the model itself where no depth is asked for."""
    return [at_depth(model, d, m, nh) for d in depths] if depths else [parse(model)]


def depth(model: str, m: int, nh: int) -> int:
    """The number of hidden layers (ReLUs) of `model`."""
    return len(widths(model, m, nh, "xent")) - 2


def family(model: str, m: int, nh: int) -> str:
    """What the models of one depth sweep share: "784-256xD-1" for every model whose hidden layers
    all have width 256 between 784 inputs and one output (the lesson's too); the model's own name
    where its hidden widths differ."""
    w = (m, nh, 1) if model == LESSON else _mlp(model)
    if len(set(w[1:-1])) != 1:
        return model
    return f"{w[0]}-{w[1]}xD-{w[-1]}"


def parameters(w: Sequence[int]) -> int:
    """How many numbers the weights and biases of widths `w` hold."""
    return sum(a * b + b for a, b in zip(w, w[1:]))


def output_names(layers: int) -> tuple[str, ...]:
    """The names of a step's outputs with `layers` linear layers: loss, d_x, d_w1, d_b1, ..."""
    return ("loss", "d_x", *(f"d_{p}{k}" for k in range(1, layers + 1) for p in ("w", "b")))


def init_params(w: Sequence[int], seed: int = 0, dtype: npt.DTypeLike = np.float32) -> tuple[np.ndarray, ...]:
    """(w1, b1, ..., wL, bL): normals scaled by He/Kaiming (variance 2 / fan-in) before a ReLU and
    1 / fan-in for the last layer, so activations keep their size at any depth; zero biases; seeded.
    For the lesson's widths this is the lesson's own initialisation."""
    rng = np.random.default_rng(seed)
    params = []
    for k, (a, b) in enumerate(zip(w, w[1:])):
        gain = 1.0 if k == len(w) - 2 else 2.0
        params += [rng.standard_normal((a, b)) * np.sqrt(gain / a), np.zeros(b)]
    return tuple(p.astype(dtype) for p in params)


def targets(y: np.ndarray, loss: str) -> np.ndarray:
    """What a step is given as y: the digit's value (n,) for mse, its one-hot row (n, CLASSES) for
    xent, whose frameworks then need no integer gather."""
    if loss == "mse":
        return y
    labels = np.asarray(y).astype(np.int64)
    onehot = np.zeros((len(labels), CLASSES), dtype=np.asarray(y).dtype)
    onehot[np.arange(len(labels)), labels] = 1
    return onehot
