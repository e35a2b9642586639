"""What one run computes once and its cases share: the problems, the inputs with their float64
reference, the inputs placed on each device, and each device's measured ceilings (a square GEMM
and a copy per device; the model's own GEMM shapes per size)."""

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from bench import defaults, fingerprint, timing
from bench.data import Problem, make_problem
from bench.frameworks.base import Framework
from bench.run.plan import Config
from bench.text import one_line
from kernels import models, reference


def ceilings(
    fw: Framework, device: str, dtype: str = "float32", gemm_size: int | None = None, copy_bytes: int | None = None
) -> dict[str, Any]:
    """This device's measured ceilings with `fw`: GEMM GFLOP/s of a k x k x k product and copy GB/s
    of a buffer of `copy_bytes` (defaults.CEILING_GEMM / CEILING_COPY_BYTES by device), in `dtype`,
    each the best of its samples (a ceiling is what the device can reach), timed by the
    framework's timer (CUDA events where it has them)."""
    k = gemm_size or defaults.CEILING_GEMM[device]
    itemsize = reference.numpy_dtype(dtype).itemsize
    count = (copy_bytes or defaults.CEILING_COPY_BYTES[device]) // itemsize
    rng = np.random.default_rng(0)
    a, b = fw.to_device((rng.random((k, k), np.float32), rng.random((k, k), np.float32)), dtype, device)
    (v,) = fw.to_device((np.ones(count, np.float32),), dtype, device)
    timer = fw.timer(device)
    with fw.placement(device):
        gemm = timing.steady(lambda: fw.gemm(a, b), fw.sync, timer=timer, **defaults.CEILING_SAMPLES)
        copy = timing.steady(lambda: fw.copy(v), fw.sync, timer=timer, **defaults.CEILING_SAMPLES)
    return {
        "gemm_gflops": 2 * k**3 / min(gemm.samples_s) / 1e9,
        "copy_gbps": 2 * itemsize * count / min(copy.samples_s) / 1e9,
        "gemm_size": k,
        "copy_bytes": itemsize * count,
        "dtype": dtype,
        "measured_with": fw.name,
        "timer": timer.name,
    }


def shape_ceiling(fw: Framework, device: str, n: int, m: int, nh: int, widths: tuple = ()) -> dict[str, Any]:
    """What the model's own GEMM shapes at this size allow with `fw` (kernels/cost.py gemms; the
    lesson's where `widths` is empty): their FLOPs over the sum of each product's best time,
    float32, as the peak is; {} where the products' arrays would not fit in the memory a case may use."""
    from bench.run.prepare import free_bytes
    from kernels import cost

    shapes = cost.gemms(n, m, nh, widths or None)
    biggest = max(4 * (r * k + k * c + r * c) for r, k, c in shapes)
    free = free_bytes(device)
    if free is not None and biggest > defaults.MEMORY_FRACTION * free:
        return {}
    rng = np.random.default_rng(0)
    timer = fw.timer(device)
    seconds = 0.0
    try:  # a ceiling that cannot be timed here leaves its column empty; it fails no case
        for r, k, c in shapes:
            arrays = (rng.random((r, k), np.float32), rng.random((k, c), np.float32))
            a, b = fw.to_device(arrays, "float32", device)
            with fw.placement(device):
                taken = timing.steady(
                    functools.partial(fw.gemm, a, b), fw.sync, timer=timer, **defaults.SHAPE_CEILING_SAMPLES
                )
            seconds += min(taken.samples_s)
    except Exception as e:
        return {"shape_error": one_line(e)}
    flops = sum(2 * r * k * c for r, k, c in shapes)
    return {"shape_gflops": flops / seconds / 1e9, "shapes": [list(s) for s in shapes]}


class Caches:
    """Per run: problems by (n, m); the inputs and float64 Reference of the current size and dtype
    (every case of a group shares them; the default suite's smaller steps add a second set); the
    inputs placed per framework and device; ceilings per framework and device."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._problems: dict[tuple[int, int], Problem] = {}
        self._references: dict[tuple, reference.Reference | reference.Evaluated] = {}
        self._placed: dict[tuple[str, str, tuple], tuple[Any, ...]] = {}
        self._ceilings: dict[tuple[str, str], dict[str, Any]] = {}
        self._shape_ceilings: dict[tuple, dict[str, Any]] = {}
        self._flushers: dict[tuple[str, str], Callable[[], None] | None] = {}

    def problem(self, n: int, m: int) -> Problem:
        if (n, m) not in self._problems:
            self._problems[n, m] = make_problem(n, m, data=self.config.data, seed=self.config.seed)
        return self._problems[n, m]

    def reference(
        self, n: int, m: int, nh: int, dtype: str, tf32: bool = False, model: str = "lesson", loss: str = "mse"
    ) -> "reference.Reference | reference.Evaluated":
        """The inputs (x, y, w1, b1, ..., wL, bL) of `model` with `loss` (kernels/models.py) rounded
        to `dtype` and their float64 Reference at the precision the case computes in (TF32 has its
        own tolerance)."""
        key = (n, m, nh, dtype, tf32, model, loss)
        if key not in self._references:
            if len(self._references) >= 2:  # at n = 1e6 a Reference holds several GB
                self._references.pop(next(iter(self._references)))
            p = self.problem(n, m)
            widths = models.widths(model, m, nh, loss)
            inputs = tuple(
                a.astype(reference.numpy_dtype(dtype), copy=False)
                for a in (p.x, models.targets(p.y, loss), *models.init_params(widths, self.config.seed))
            )
            precision = reference.precision(dtype, tf32)
            spec = models.spec(model)
            self._references[key] = (
                reference.Evaluated(inputs, precision, spec) if spec else reference.Reference(inputs, precision)
            )
        return self._references[key]

    def placed(
        self,
        fw: Framework,
        device: str,
        n: int,
        m: int,
        nh: int,
        dtype: str,
        tf32: bool = False,
        model: str = "lesson",
        loss: str = "mse",
    ) -> tuple[Any, ...]:
        """The inputs of reference(n, m, nh, dtype, tf32, model, loss) on `device` as `fw` arrays;
        only those of the latest inputs are kept."""
        inputs = (n, m, nh, dtype, tf32, model, loss)
        key = (fw.name, device, inputs)
        if key not in self._placed:
            ref = self.reference(*inputs)
            self._placed = {k: v for k, v in self._placed.items() if k[2] == inputs}
            self._placed[key] = fw.to_device(ref.inputs, dtype, device)
        return self._placed[key]

    def flusher(self, fw: Framework, device: str) -> Callable[[], None] | None:
        """fw.flusher(device), made once per framework and device (a GPU's holds a buffer over its L2)."""
        if (fw.name, device) not in self._flushers:
            self._flushers[fw.name, device] = fw.flusher(device)
        return self._flushers[fw.name, device]

    def ceilings(self, fw: Framework, device: str) -> dict[str, Any]:
        if (fw.name, device) not in self._ceilings:
            self._ceilings[fw.name, device] = ceilings(
                fw, device, gemm_size=self.config.ceiling_gemm, copy_bytes=self.config.ceiling_copy_bytes
            )
        return self._ceilings[fw.name, device]

    def shape_ceiling(self, fw: Framework, device: str, n: int, m: int, nh: int, widths: tuple = ()) -> dict[str, Any]:
        """shape_ceiling(...), measured once per framework, device, size and widths."""
        key = (fw.name, device, n, m, nh, tuple(widths))
        if key not in self._shape_ceilings:
            self._shape_ceilings[key] = shape_ceiling(fw, device, n, m, nh, tuple(widths))
        return self._shape_ceilings[key]

    def has_ceilings(self, fw: Framework, device: str, size: tuple | None = None) -> bool:
        """Whether the device's ceilings (and, given a size (n, m, nh, widths), its shapes' ceiling)
        are measured."""
        shapes = size is None or (fw.name, device, *size) in self._shape_ceilings
        return (fw.name, device) in self._ceilings and shapes

    def fingerprint(self, loaded: dict[str, Framework]) -> dict[str, Any]:
        """The run's environment, with each framework's facts and the first size's data source."""
        n, m, _ = self.config.sizes[0]
        return fingerprint.collect(
            {name: fw.info() for name, fw in loaded.items()},
            data_source=self.problem(n, m).source,
            seeds={"data": self.config.seed, "params": self.config.seed},
        )
