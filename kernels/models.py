"""Which network a case runs: its layer widths and its loss, named so a case key can carry them.

Framework-free. A model is named by text: "lesson" (the lesson's m -> nh -> 1, its widths taken
from the size), "mlp:W0,W1,...,WL" (any depth and widths, ReLU between the linear layers) or
"path/to/file.py:NAME", a user's model: NAME in that file is a list of kernels.lesson.Linear
shapes and kernels.lesson.Module subclasses (parameter-free layers with a forward and a
hand-written backward over the `ops` namespace; examples/tanh_model.py). A loss
is "mse" (the lesson's regression on the digit's value, one output) or "xent" (log-softmax and
negative log-likelihood over CLASSES digits: the last width becomes CLASSES).

Parameters are a flat tuple (w1, b1, ..., wL, bL), wk of shape (fan-in, fan-out); every step takes
step(x, y, *params) and returns (loss, d_x, d_w1, d_b1, ..., d_wL, d_bL) (output_names()).
"""

import functools
import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

LESSON = "lesson"
LOSSES = ("mse", "xent")
CLASSES = 10
MAX_LAYERS = 256  # a widths list longer than this is a typo, not a network


class ModelError(ValueError):
    """A model or loss name makes no sense; str() is one line naming the problem."""


def is_user(model: str) -> bool:
    return ".py:" in model


def parse(name: str) -> str:
    """The canonical name of model `name` ("lesson", "mlp:784,256,1" or "file.py:NAME", whose file
    is loaded and its model checked); ModelError naming the problem. Checked before any framework
    loads."""
    name = name.strip()
    if name == LESSON:
        return LESSON
    if is_user(name):
        user_spec(name)
        return name
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
    if loss == "xent" and is_user(model):
        if out[-1] != CLASSES:
            raise ModelError(f"model {model} has {out[-1]} outputs; the xent loss needs {CLASSES} (one a digit)")
        return out
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
    """An mlp's widths as its name gives them; a user's model's, from its Linear shapes."""
    if is_user(model):
        linears = [item for item in user_spec(model) if not isinstance(item, type)]
        return (linears[0].fan_in, *(item.fan_out for item in linears))
    return tuple(int(v) for v in parse(model).partition(":")[2].split(","))


def spec(model: str) -> tuple | None:
    """The layers of a user's model (kernels/lesson.py Spec), or None for the lesson and an mlp,
    whose steps build Lin and Relu from the parameters."""
    return user_spec(model) if is_user(model) else None


@functools.cache
def user_spec(model: str) -> tuple:
    """NAME of the file of `model` ("path/to/file.py:NAME"), loaded and checked: a list of Linear
    shapes (each taking the last one's fan-out) and Module subclasses; ModelError naming the problem
    (a missing file, an error on import, no NAME, a wrong item, widths that do not chain)."""
    from kernels import lesson

    path, _, name = model.rpartition(":")
    file = Path(path)
    if not file.is_file():
        raise ModelError(f"model {model}: no such file {path}")
    unique = "bench_user_model_" + hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]
    loader = importlib.util.spec_from_file_location(unique, file)
    if loader is None or loader.loader is None:
        raise ModelError(f"model {model}: {path} is not a Python file")
    module = importlib.util.module_from_spec(loader)
    try:
        loader.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - the user's code: any error is theirs, said in one line
        first = (str(e).splitlines() or [""])[0][:200]
        raise ModelError(f"model {model}: importing {path} raised {type(e).__name__}: {first}") from None
    if not hasattr(module, name):
        raise ModelError(f"model {model}: {path} defines no {name!r}")
    items = getattr(module, name)
    if not isinstance(items, (list, tuple)) or not items:
        raise ModelError(f"model {model}: {name} must be a non-empty list of Linear(fan_in, fan_out) and layer classes")
    last = None
    for i, item in enumerate(items):
        if isinstance(item, lesson.Linear):
            if (
                not (isinstance(item.fan_in, int) and isinstance(item.fan_out, int))
                or min(item.fan_in, item.fan_out) < 1
            ):
                raise ModelError(f"model {model}: item {i} {item} needs whole widths of at least 1")
            if last is not None and item.fan_in != last:
                raise ModelError(f"model {model}: item {i} takes {item.fan_in} inputs, the layer before gives {last}")
            last = item.fan_out
        elif not (isinstance(item, type) and issubclass(item, lesson.Module)):
            raise ModelError(
                f"model {model}: item {i} ({item!r}) is neither a Linear(fan_in, fan_out) nor a "
                "kernels.lesson.Module subclass"
            )
    if last is None:
        raise ModelError(f"model {model}: {name} has no Linear layer")
    return tuple(items)


def needs(model: str) -> dict[str, str]:
    """{op: the layer that calls it} of the ops a user's model calls beyond array arithmetic."""
    layers = [item for item in spec(model) or () if isinstance(item, type)]
    return {op: item.__name__ for item in layers for op in getattr(item, "needs", ())}


def check_backward(model: str, seed: int = 0) -> None:
    """ModelError where a user's layers' hand-written backward disagrees with finite differences of
    their forward (float64 NumPy, three rows, a sample of the coordinates of x and every parameter):
    a wrong backward would otherwise be the float64 oracle every framework is held to."""
    from kernels import lesson, numpy_steps

    layer_spec = spec(model)
    if layer_spec is None:
        return
    w = _mlp(model)
    rng = np.random.default_rng(seed)
    x = rng.random((3, w[0]))
    y = targets(rng.integers(0, CLASSES, 3).astype(float), "mse" if w[-1] == 1 else "xent")
    params = [p if p.ndim == 2 else rng.normal(0, 0.1, p.shape) for p in init_params(w, seed, np.float64)]
    inputs = [x, *params]
    try:
        got = lesson.module_step(numpy_steps.OPS, x, y, *params, spec=layer_spec)
    except Exception as e:  # noqa: BLE001 - the user's code
        raise ModelError(f"model {model}: its layers raised {type(e).__name__} in NumPy: {e}") from None

    def value(args):
        return float(lesson.forward(numpy_steps.OPS, args[0], y, *args[1:], spec=layer_spec))

    for k, (name, grad) in enumerate(zip(output_names(len(params) // 2)[1:], got[1:])):
        picks = [
            np.unravel_index(i, inputs[k].shape) for i in rng.choice(inputs[k].size, min(24, inputs[k].size), False)
        ]
        numeric, analytic = [], []
        for idx in picks:
            moved = [np.array(a, copy=True) for a in inputs]
            moved[k][idx] += 1e-6
            up = value(moved)
            moved[k][idx] -= 2e-6
            numeric.append((up - value(moved)) / 2e-6)
            analytic.append(float(np.asarray(grad)[idx]))
        diff = float(np.linalg.norm(np.subtract(analytic, numeric)))
        scale = float(np.linalg.norm(numeric))
        if diff > 1e-5 * max(scale, 1e-8):
            raise ModelError(
                f"model {model}: its hand-written backward disagrees with finite differences of its forward "
                f"({name} relative error {diff / max(scale, 1e-300):.1e})"
            )


def at_depth(model: str, depth: int, m: int, nh: int) -> str:
    """`model` with `depth` hidden layers of its (first) hidden width: the lesson at depth d is
    mlp:m,nh x d,1; an mlp keeps its input and output widths."""
    if depth < 1:
        raise ModelError(f"bad depth {depth}: a depth is the number of hidden layers, at least 1")
    if is_user(model):
        raise ModelError(f"model {model}: a depth sweep repeats an mlp's hidden layer, not a user's model's layers")
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
    """The number of hidden layers (the linear layers less one) of `model`."""
    return len((m, nh, 1) if model == LESSON else _mlp(model)) - 2


def family(model: str, m: int, nh: int) -> str:
    """What the models of one depth sweep share: "784-256xD-1" for every model whose hidden layers
    all have width 256 between 784 inputs and one output (the lesson's too); the model's own name
    where its hidden widths differ."""
    w = (m, nh, 1) if model == LESSON else _mlp(model)
    if len(set(w[1:-1])) != 1 or is_user(model):
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
