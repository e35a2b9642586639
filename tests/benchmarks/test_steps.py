"""pytest-benchmark suite: every TensorFlow step x backend x device at a small size, through the
`benchmark` fixture with the harness's warm-up and a device sync after every call.

    pytest tests/benchmarks --benchmark-only --benchmark-autosave
    pytest tests/benchmarks --benchmark-only --benchmark-compare --benchmark-compare-fail=median:10%

(--benchmark-compare-fail flags noise as regressions on shared machines; `python -m bench gate`
is the gate that does not.)"""
import dataclasses

import pytest

from bench import run
from kernels import reference

tf_backend = pytest.importorskip("bench.backend_tf", reason="TensorFlow is not installed")

SIZE = (2_000, 784, 50)   # small: the broadcast step's (n, m, nh) tensor is 314 MB here
ROUNDS = 20
WARMUP = next(f.default for f in dataclasses.fields(run.Config) if f.name == "warmup")   # the harness's


def device_param(device):
    present = device in tf_backend.devices()
    return pytest.param(device, marks=() if present else pytest.mark.skip(reason=f"no {device} visible to TensorFlow"))


@pytest.fixture(scope="module")
def placed():
    """The inputs on each device, made once."""
    from bench.data import make_problem
    n, m, nh = SIZE
    p = make_problem(n, m, seed=0)
    inputs = (p.x, p.y, *reference.init_params(m, nh, 0))
    return {d: tf_backend.to_device(inputs, "float32", d) for d in tf_backend.devices()}


@pytest.mark.parametrize("device", [device_param("cpu"), device_param("gpu")])
@pytest.mark.parametrize("backend", list(tf_backend.BACKENDS))
@pytest.mark.parametrize("step", list(tf_backend.STEPS))
def test_step(benchmark, placed, step, backend, device):
    args = placed[device]
    with tf_backend.placement(device):
        fn = tf_backend.BACKENDS[backend](tf_backend.STEPS[step])

        def call():
            with tf_backend.placement(device):
                out = fn(*args)
            tf_backend.sync()
            return out

        loss = call()[0]   # the first call traces and compiles: kept out of the timed rounds
    benchmark.group = f"{device} n={SIZE[0]} m={SIZE[1]} nh={SIZE[2]} float32"
    benchmark.extra_info.update(step=step, backend=backend, device=device, first_loss=float(loss))
    benchmark.pedantic(call, warmup_rounds=WARMUP, rounds=ROUNDS, iterations=1)
