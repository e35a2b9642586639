"""Launching a data-parallel case: its processes (ports, devices, environment), a deadline that no
worker outlives, the results collected from every rank, the check against the float64 reference on
the global batch, and the record.

Faults: a request the machine cannot serve (more replicas than devices, a port in use, n that does
not split evenly) is a DistributedError before anything starts; a worker that fails ends the case
as failed with its one-line error and the others are stopped; a worker that hangs is killed with
all of its process group at the deadline, and the case fails saying so. Every process is started
in a session of its own and killed by group, so torchrun's children go with it.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import frameworks
from bench.records import CaseKey, Record
from kernels import cost, reference

ROOT = Path(__file__).resolve().parents[2]
GRACE_S = 10.0
# a launcher's settings that must not leak from this process's environment into its workers
INHERITED = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TF_CONFIG",
    "BENCH_RANK",
)  # after one worker fails, how long the others get to stop on their own


class DistributedError(ValueError):
    """A data-parallel request this machine cannot serve; str() is one line."""


@dataclass(frozen=True)
class Engine:
    framework: str
    backends: tuple
    per_replica_process: bool  # one process a replica (multi-process engines) or one for all
    what: str


ENGINES = {
    "mirrored": Engine(
        "tensorflow", ("eager", "function", "xla"), False, "tf.distribute.MirroredStrategy over R local devices"
    ),
    "multiworker": Engine(
        "tensorflow",
        ("eager", "function", "xla"),
        True,
        "tf.distribute.MultiWorkerMirroredStrategy, one worker process a replica (TF_CONFIG)",
    ),
    "sharding": Engine(
        "jax", ("jit",), False, "jax.sharding: a Mesh over R devices, the batch sharded, XLA's all-reduce"
    ),
    "torch.distributed": Engine(
        "torch",
        ("eager", "compile"),
        True,
        "torch.distributed all_reduce, one process a replica (torchrun; gloo on CPU, NCCL on GPU)",
    ),
}


@dataclass(frozen=True)
class Request:
    engine: str  # "" : the plain single-device case, timed by the same loop
    framework: str
    backend: str
    device: str
    replicas: int
    n: int
    m: int
    nh: int

    @property
    def key(self) -> CaseKey:
        """The case this request records: the manual step in float32, its engine and replicas."""
        return CaseKey(
            self.framework,
            "manual",
            self.backend,
            self.device,
            self.n,
            self.m,
            self.nh,
            "float32",
            engine=self.engine,
            replicas=self.replicas,
        )

    @property
    def label(self) -> str:
        return self.key.label + ("" if self.engine else " one device")


def devices_available(device: str) -> int:
    """Devices a replica can have here: CPU cores (one a replica) or CUDA GPUs."""
    if device == "cpu":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    from bench import fingerprint

    return len(fingerprint.gpus())


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of a previous case is not "in use"
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_ports(count: int) -> list[int]:
    """`count` ports free now (bound together, so distinct)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def validate(req: Request, port: int | None = None) -> None:
    """DistributedError naming the problem, before any process starts."""
    if req.engine and req.engine not in ENGINES:
        raise DistributedError(f"unknown engine {req.engine!r} (available: {', '.join(ENGINES)})")
    backends = ENGINES[req.engine].backends if req.engine else tuple(frameworks.spec(req.framework).backends)
    if req.backend not in backends:
        raise DistributedError(
            f"{req.engine or req.framework} has no backend {req.backend!r} (it has {', '.join(backends)})"
        )
    if req.replicas < 1:
        raise DistributedError(f"replicas must be at least 1, got {req.replicas}")
    if not req.engine and req.replicas != 1:
        raise DistributedError("a single-device case has one replica")
    have = devices_available(req.device)
    if req.replicas > have:
        kind = "CPU cores" if req.device == "cpu" else "CUDA GPUs"
        raise DistributedError(
            f"{req.replicas} replicas asked, but this machine has {have} {kind} "
            f"(one a replica{'; multi-host runs: see docs/data-parallel.md' if req.device != 'cpu' else ''})"
        )
    if req.n % req.replicas:
        raise DistributedError(f"n={req.n} does not split evenly over {req.replicas} replicas")
    if port is not None:
        needed = req.replicas if req.engine == "multiworker" else 1
        for p in range(port, port + needed):
            if not 0 < p < 65536:
                raise DistributedError(f"--port {port}: not a TCP port")
            if port_in_use(p):
                raise DistributedError(f"port {p} is in use (--port {port}); choose another or leave --port out")


def write_inputs(folder: str | Path, n: int, m: int, nh: int, seed: int) -> tuple[Path, str]:
    """The global batch and parameters as every process reads them: x, y, w1, b1, w2, b2 (float32)."""
    from bench.data import make_problem

    path = Path(folder) / f"inputs-{n}-{m}-{nh}-{seed}.npz"
    p = make_problem(n, m, seed=seed)
    if not path.exists():
        w1, b1, w2, b2 = reference.init_params(m, nh, seed)
        np.savez(path, x=p.x.astype(np.float32), y=p.y.astype(np.float32), w1=w1, b1=b1, w2=w2, b2=b2)
    return path, p.source


def _commands(req, spec_path, port):
    """[(argv, extra environment)], one per process to start."""
    worker = [sys.executable, "-m", "bench.distributed.worker", str(spec_path)]
    engine = req.engine
    if engine == "multiworker":
        ports = list(range(port, port + req.replicas)) if port else free_ports(req.replicas)
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        # one device a worker: on GPUs each worker sees only its own (else each would mirror over all)
        return [
            (
                worker,
                {
                    "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                    "BENCH_RANK": str(i),
                    **({"CUDA_VISIBLE_DEVICES": str(i)} if req.device != "cpu" else {}),
                },
            )
            for i in range(req.replicas)
        ]
    if engine == "torch.distributed":
        master = port or free_ports(1)[0]
        return [
            (
                [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--nnodes",
                    "1",
                    "--nproc-per-node",
                    str(req.replicas),
                    "--master-addr",
                    "127.0.0.1",
                    "--master-port",
                    str(master),
                    "--module",
                    "bench.distributed.worker",
                    str(spec_path),
                ],
                frameworks.thread_env(_threads(req), (req.framework,)) if _threads(req) else {},
            )
        ]
    extra = frameworks.thread_env(_threads(req), (req.framework,)) if _threads(req) and not engine else {}
    if engine == "sharding" or (not engine and req.framework == "jax"):
        if req.device == "cpu":
            flags = os.environ.get("XLA_FLAGS", "")
            extra = {
                "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={req.replicas}".strip(),
                "JAX_PLATFORMS": "cpu",
                **extra,
            }
    return [(worker, extra)]


def _per_process(req):
    return ENGINES[req.engine].per_replica_process if req.engine else False


def _cores(req):
    """On a CPU, a core a replica: the first R cores this process may use. A process of a multi-
    process engine is pinned to its replica's core with one thread; a single process (mirrored,
    sharding, or the one-device case) to all R cores with R threads. So R replicas use R cores at
    every R, and R=1 under an engine and the one-device case both use one. None on GPUs."""
    if req.device != "cpu" or not hasattr(os, "sched_getaffinity"):
        return None
    return sorted(os.sched_getaffinity(0))[: req.replicas]


def _threads(req):
    """CPU threads a process is given (None on GPUs: the framework's default)."""
    if req.device != "cpu":
        return None
    return 1 if _per_process(req) else req.replicas


def _tree(pid):
    """pid's descendants: torchrun's workers may leave its process group, so they are found by parentage."""
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except Exception:  # noqa: BLE001 - no psutil, or the process is gone: the group kill still runs
        return []


def _kill(procs):
    for p in procs:
        children = _tree(p.pid) if p.poll() is None else []  # a reaped pid may be another program's now
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _last_line(path):
    """What a process's log says went wrong: torchrun's root cause (the rank and its exit code) where
    it names one, else the last line."""
    try:
        lines = [line.strip() for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    if "Root Cause (first observed failure):" in lines:
        cause = lines[lines.index("Root Cause (first observed failure):") :]
        fields = dict(line.split(":", 1) for line in cause if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if "rank" in fields and "exitcode" in fields:
            return f"torchrun: rank {fields['rank'].split()[0]} exited with code {fields['exitcode'].split()[0]}"
    return lines[-1][:300] if lines else "nothing logged"


def _start(commands, folder):
    procs = []
    inherited = {k: v for k, v in os.environ.items() if k not in INHERITED}
    env_base = dict(
        inherited,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONDONTWRITEBYTECODE="1",
        TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    )
    try:
        for i, (argv, extra) in enumerate(commands):
            log = open(Path(folder) / f"process{i}.log", "wb")
            procs.append(
                subprocess.Popen(
                    argv,
                    cwd=ROOT,
                    env={**env_base, **extra},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            log.close()
    except BaseException:
        _kill(procs)
        raise
    return procs


def _wait(procs, timeout_s):
    """None when every process ended (whatever its status), else why they were stopped."""
    deadline = time.monotonic() + timeout_s
    failed_at = None
    try:
        while any(p.poll() is None for p in procs):
            now = time.monotonic()
            if failed_at is None and any(p.poll() not in (None, 0) for p in procs):
                failed_at = now
            if failed_at is not None and now - failed_at > GRACE_S:
                _kill(procs)
                return f"a worker failed; the others were stopped {GRACE_S:g} s later"
            if now > deadline:
                _kill(procs)
                return f"timed out after {timeout_s:g} s (every worker process killed)"
            time.sleep(0.05)
    except BaseException:
        _kill(procs)
        raise
    return None


def run(
    req: Request,
    folder: str | Path,
    *,
    samples: int,
    warmup: int,
    timeout_s: float,
    seed: int = 0,
    port: int | None = None,
    run_id: str = "",
    fp: dict[str, Any] | None = None,
) -> Record:
    """Launch, collect, check: a Record (status ok or failed; never raises for a worker's fault)."""
    validate(req, port)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    inputs_path, source = write_inputs(folder.parent, req.n, req.m, req.nh, seed)
    for stale in folder.glob("rank*"):
        stale.unlink()
    spec = {
        "engine": req.engine,
        "framework": req.framework,
        "backend": req.backend,
        "device": req.device,
        "replicas": req.replicas,
        "warmup": warmup,
        "samples": samples,
        "inputs": str(inputs_path),
        "out": str(folder),
        "threads": _threads(req),
        "cores": _cores(req),
        "per_process": _per_process(req),
    }
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec))
    commands = _commands(req, spec_path, port)
    base = dict(
        req.key.asdict(),
        run_id=run_id,
        fingerprint=fp or {},
        data=source,
        flops=cost.flops("manual", req.n, req.m, req.nh),
        min_bytes=cost.min_bytes("manual", req.n, req.m, req.nh, 4),
    )
    ranks = req.replicas if _per_process(req) else 1
    distributed = {
        "hosts": 1,
        "processes": ranks,
        "engine": ENGINES[req.engine].what if req.engine else "none: one device",
        "timeout_s": timeout_s,
    }
    started = time.perf_counter()
    procs = _start(commands, folder)
    stopped = _wait(procs, timeout_s)
    wall = time.perf_counter() - started
    errors = sorted(folder.glob("rank*.error"), key=lambda p: p.stat().st_mtime)  # the first to fail, not its victims
    missing = [k for k in range(ranks) if not (folder / f"rank{k}.json").exists()]
    if errors or stopped or missing:
        why = (errors[0].read_text().strip() or "failed without a message") if errors else None
        why = "; ".join(filter(None, [f"{errors[0].stem}: {why}" if why else None, stopped]))
        if not why:
            codes = [p.returncode for p in procs]
            bad = next((i for i, c in enumerate(codes) if c), 0)
            why = (
                f"process {bad} exited with status {codes[bad]} before rank {missing[0]} wrote its result: "
                f"{_last_line(folder / f'process{bad}.log')} (log: {folder / f'process{bad}.log'})"
            )
        return Record(**base, status="failed", error=why[:500], distributed={**distributed, "wall_s": wall})
    parts = [json.loads((folder / f"rank{k}.json").read_text()) for k in range(ranks)]
    arrays = [np.load(folder / f"rank{k}.npz") for k in range(ranks)]
    d_x = np.concatenate([a["d_x"] for a in arrays])
    with np.load(inputs_path) as f:
        inputs = tuple(f[k] for k in ("x", "y", "w1", "b1", "w2", "b2"))
    ref = reference.Reference(inputs, "float32")
    # every rank holds the all-reduced loss and gradients: each rank's are checked, the worst kept
    checks = [ref.check({"d_x": d_x, **{k: a[k] for k in a.files if k != "d_x"}}) for a in arrays]
    check = next((c for c in checks if c.problem), max(checks, key=lambda c: c.max_rel_err))
    got = {k: arrays[0][k] for k in arrays[0].files}
    # the step time of the group: each step's slowest process
    samples_s = np.max(np.array([p["samples_s"] for p in parts]), axis=0).tolist()
    allreduce = (
        [max(v) for v in zip(*[p["allreduce_samples_s"] for p in parts])] if parts[0]["allreduce_samples_s"] else []
    )
    distributed.update(
        settings=parts[0]["settings"],
        allreduce_samples_s=allreduce,
        wall_s=wall,
        allreduce="timed apart" if allreduce else "inside the engine's step: not exposed",
    )
    common = dict(
        base,
        loss=float(np.asarray(got["loss"])),
        max_rel_err=check.max_rel_err,
        rel_errs=check.errors,
        tolerance=check.tolerance,
        mask_flips=check.mask_flips,
        distributed=distributed,
        first_call_s=max(p["first_call_s"] for p in parts),
        warmup_s=tuple(max(v) for v in zip(*[p["warmup_s"] for p in parts])),
        timer=f"{parts[0].get('timer', 'host clock + sync')}, slowest process",
    )
    if check.problem:
        return Record(**common, status="failed", error=f"wrong answer: {check.problem}")
    hosts = [p.get("host_samples_s") or [] for p in parts]
    host_s = tuple(np.max(np.array(hosts), axis=0).tolist()) if all(len(h) == len(samples_s) for h in hosts) else ()
    return Record(**common, status="ok", samples_s=tuple(samples_s), host_samples_s=host_s, stop_reason="max_samples")


def failed(req: Request, why: str, run_id: str = "", fp: dict[str, Any] | None = None) -> Record:
    """The record of a case that could not start."""
    return Record(**req.key.asdict(), run_id=run_id, fingerprint=fp or {}, status="failed", error=why[:500])
