"""NumPy: the lesson's hand-written steps (kernels/numpy_steps.py) on plain NumPy, on the CPU: the
baseline every other framework is asked against."""

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from bench.frameworks.base import Framework


class NumPy(Framework):
    name = "numpy"
    package = "numpy"
    kernels = "kernels.numpy_steps"
    thread_env = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    steps = {"manual": "manual_step", "module": "module_step"}
    backends = {"eager": lambda step: step}
    dtypes = ("float32", "float64", "float16")  # bfloat16 (ml_dtypes) matrix products come back as float32

    def to_device(self, arrays: Iterable[np.ndarray], dtype: str, device: str) -> tuple[Any, ...]:
        return tuple(np.array(a, dtype) for a in arrays)

    def info(self) -> dict[str, Any]:
        blas: Mapping[str, object] = {}
        try:
            config = np.show_config(mode="dicts")
            blas = config.get("Build Dependencies", {}).get("blas", {})
        except TypeError:  # NumPy 1.x prints its configuration only
            pass
        return {
            "version": np.__version__,
            "blas": blas.get("name"),
            "blas_version": blas.get("version"),
            "threads_env": {
                k: os.environ.get(k)
                for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT")
            },
        }
