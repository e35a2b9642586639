"""pytest-benchmark suite: every framework's step x backend x device at a small size, through the
`benchmark` fixture with the harness's warm-up and a device sync after every call.

    pytest tests/benchmarks --benchmark-only --benchmark-autosave
    pytest tests/benchmarks --benchmark-only --benchmark-compare --benchmark-compare-fail=median:10%

(--benchmark-compare-fail flags noise as regressions on shared machines; `python -m bench gate`
is the gate that does not.)"""

import pytest

from bench import defaults, frameworks
from kernels import reference

SIZE = (2_000, 784, 50)  # small: the broadcast step's (n, m, nh) tensor is 314 MB here
ROUNDS = 20


def cases():
    """(framework, step, backend, device) of every installed framework, from the frameworks' classes
    (nothing imported while collecting: `make test` skips this suite); a device the framework does
    not see skips when the test runs."""
    out = []
    for name in frameworks.FRAMEWORKS:
        reason = frameworks.unavailable_reason(name)
        if reason:
            out.append(pytest.param(name, None, None, "cpu", marks=pytest.mark.skip(reason=reason), id=name))
            continue
        fw = frameworks.spec(name)
        out += [
            pytest.param(name, step, backend, device, id=f"{name}-{step}-{backend}-{device}")
            for device in ("cpu", "gpu")
            for step in fw.steps
            for backend in fw.backends
        ]
    return out


@pytest.fixture(scope="module")
def inputs():
    from bench.data import make_problem

    n, m, nh = SIZE
    p = make_problem(n, m, seed=0)
    return (p.x, p.y, *reference.init_params(m, nh, 0))


@pytest.mark.parametrize("framework, step, backend, device", cases())
def test_step(benchmark, inputs, framework, step, backend, device):
    fw = frameworks.load(framework)
    if device not in fw.devices():
        pytest.skip(f"no {device} visible to {framework}")
    args = fw.to_device(inputs, "float32", device)
    fn = fw.compile(step, backend)

    def call():
        with fw.placement(device):
            out = fn(*args)
        fw.sync()
        return out

    loss = call()[0]  # the first call traces and compiles: kept out of the timed rounds
    benchmark.group = f"{device} n={SIZE[0]} m={SIZE[1]} nh={SIZE[2]} float32"
    benchmark.extra_info.update(
        framework=framework, step=step, backend=backend, device=device, first_loss=float(fw.to_numpy(loss))
    )
    benchmark.pedantic(call, warmup_rounds=defaults.WARMUP, rounds=ROUNDS, iterations=1)
