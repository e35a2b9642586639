"""The grid: a run's configuration, and every framework x device x size x dtype x step x backend
case it asks for, grouped as the loop times them (the cases of one device, size and dtype together)."""

import datetime
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from bench import defaults, frameworks, timing
from bench.frameworks.base import Framework
from bench.records import CaseKey
from kernels import models


class ConfigError(ValueError):
    """A run was asked for something that does not exist here; str() is one line."""


def new_run_id() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


@dataclass(frozen=True)
class Config:
    out: Path | None
    frameworks: tuple = ("tensorflow",)
    steps: tuple | None = None  # None: every step each framework has
    backends: tuple | None = None
    device: str = "all"  # cpu, gpu or all (every device present)
    sizes: tuple = (defaults.SIZE,)
    models: tuple = ("lesson",)  # kernels/models.py names
    losses: tuple = ("mse",)
    depths: tuple = ()  # each model at these numbers of hidden layers (): as named
    dtypes: tuple = (defaults.DTYPE,)
    tf32s: tuple = (False,)  # TF32 off and/or on (for float32; a GPU feature)
    caches: tuple = ("warm",)  # warm and/or cold (the device's cache flushed before each call)
    data: str | None = None
    seed: int = defaults.SEED
    step_n: dict = field(default_factory=lambda: dict(defaults.STEP_N))
    warmup: int = defaults.WARMUP
    min_samples: int = defaults.MIN_SAMPLES
    max_samples: int = defaults.MAX_SAMPLES
    target_ci: float = defaults.TARGET_CI
    budget_s: float = defaults.BUDGET_S
    budget_rounds: int = 0  # a case's budget ends it only after this many rounds (the gate's pairing)
    round_s: float = defaults.ROUND_S
    batch_s: float | None = defaults.BATCH_S  # the batched measurement (one sync, the dispatch time); None: none
    memory_fraction: float = defaults.MEMORY_FRACTION
    counters: bool = True  # each case's counters, in an untimed pass after its timing
    ceiling_gemm: int | None = None  # k of the ceiling's k x k x k GEMM (None: defaults.CEILING_GEMM)
    ceiling_copy_bytes: int | None = None  # the ceiling's copy (None: defaults.CEILING_COPY_BYTES)
    checkpoint_s: float = defaults.CHECKPOINT_S
    resume: bool = False  # skip the cases already in out/records.jsonl
    isolate: bool = True  # each framework's cases in a worker process of its own (bench/run/worker.py)
    leave_out_broken: bool = False  # a framework that fails to load is left out (said), not an error: the default set
    pin: tuple = ()  # the CPUs every framework worker (and each thread it makes) is bound to;
    # (): wherever the OS schedules them
    venvs: tuple = ()  # a venvs.Env per --env set, each framework's cases run in each (bench/venvs.py);
    # (): the harness's own environment
    run_id: str = field(default_factory=new_run_id)

    def rounds(self) -> timing.Rounds:
        """How its cases are sampled in interleaved rounds (timing.interleaved)."""
        return timing.Rounds(
            target_ci=self.target_ci,
            min_samples=self.min_samples,
            min_rounds=defaults.MIN_ROUNDS,
            max_samples=self.max_samples,
            budget_s=self.budget_s,
            budget_rounds=self.budget_rounds,
            round_s=self.round_s,
            checkpoint_s=self.checkpoint_s,
        )


class Case(NamedTuple):
    """One case of the grid: its key, and what runs it (a Framework, or its Runner or Worker; the
    key's n is the step's own n: the default suite runs some steps smaller)."""

    fw: Any
    key: CaseKey


class Group(NamedTuple):
    """The cases of one device, size, model, loss, dtype, TF32 setting and cache state: checked one
    by one, then timed together (TF32 is a switch of the whole framework, so a group shares it)."""

    device: str
    n: int
    m: int
    nh: int  # the model's first hidden width (kernels/models.py hidden_width)
    dtype: str
    tf32: bool
    cache: str
    cases: list[Case]
    model: str = "lesson"
    loss_fn: str = "mse"


def load_frameworks(names: Iterable[str]) -> dict[str, Framework]:
    """{name: Framework}; ConfigError naming the framework and why it cannot load."""
    loaded: dict[str, Framework] = {}
    for name in names:
        try:
            loaded[name] = frameworks.load(name)
        except frameworks.FrameworkUnavailable as e:
            raise ConfigError(f"framework {name}: {e}") from None
    return loaded


def _combinations(config, loaded):
    """[(fw, device, step, backend)] of the config; ConfigError for names that exist nowhere. A
    runner of an --env environment brings its `deps` (its set's name) to its cases' keys."""
    for kind, asked in (("step", config.steps), ("backend", config.backends)):
        known = sorted({k for fw in loaded.values() for k in (fw.steps if kind == "step" else fw.backends)})
        for name in asked or ():
            if name not in known:
                raise ConfigError(f"unknown {kind} {name!r} (available: {', '.join(known)})")
    out = []
    for fw in loaded.values():
        present = fw.devices()
        if config.device == "all":
            devices = present
        elif config.device in present:
            devices = [config.device]
        else:
            raise ConfigError(
                f"device {config.device!r} is not available to {fw.name} here (present: {', '.join(present)})"
            )
        for device in devices:
            for step in config.steps or fw.steps:
                for backend in config.backends or fw.backends:
                    # a GPU-only backend runs on a CPU only when asked for by name (it is then
                    # recorded as skipped, saying why)
                    unasked = backend in fw.gpu_backends and device != "gpu" and not config.backends
                    if step in fw.steps and backend in fw.backends and not unasked:
                        out.append((fw, device, step, backend))
    return out


def plan(config: Config, loaded: Mapping[Any, Any]) -> list[Group]:
    """[Group] in the order they run: size, model, loss, then dtype, TF32 (float32 only), cache, then device;
    ConfigError for unknown names and missing devices, before anything runs. loaded: {name: a
    Framework, or the Runner or Worker holding one} (its name, steps, backends, gpu_backends, devices(),
    and a Worker's deps: the --env set it runs in)."""
    combos = _combinations(config, loaded)
    devices = list(dict.fromkeys(device for _, device, _, _ in combos))
    groups = []
    for n, m, size_nh, model, loss in networks(config):
        nh = models.hidden_width(model, size_nh)
        for dtype in config.dtypes:
            for tf32 in config.tf32s if dtype == "float32" else (False,):
                for cache in config.caches:
                    for device in devices:
                        cases = [
                            Case(
                                fw,
                                CaseKey(
                                    fw.name,
                                    step,
                                    backend,
                                    d,
                                    min(n, config.step_n.get(step, n)),
                                    m,
                                    nh,
                                    dtype,
                                    tf32,
                                    cache,
                                    deps=getattr(fw, "deps", ""),
                                    model=model,
                                    loss_fn=loss,
                                ),
                            )
                            for fw, d, step, backend in combos
                            if d == device
                        ]
                        groups.append(Group(device, n, m, nh, dtype, tf32, cache, cases, model, loss))
    return groups


def networks(config: Config) -> list[tuple[int, int, int, str, str]]:
    """(n, m, nh, model, loss) of every size, model (at each depth asked for) and loss of the run;
    ConfigError where a model does not fit a size (kernels/models.py widths)."""
    out = []
    for n, m, nh in config.sizes:
        for asked in config.models:
            for model in models.variants(asked, config.depths, m, nh):
                for loss in config.losses:
                    try:
                        models.widths(model, m, nh, loss)
                    except models.ModelError as e:
                        raise ConfigError(str(e)) from None
                    out.append((n, m, nh, model, loss))
    return list(dict.fromkeys(out))
