"""What runs inside a worker process: one function per engine, each taking the spec (a dict: engine,
backend, device, replicas, rank, warmup, samples, inputs) and the inputs (x, y, w1, b1, w2, b2 as
NumPy arrays, the global batch), and returning this process's part of the result:

    {"outputs": {"loss", "d_w1", "d_b1", "d_w2", "d_b2"} (all-reduced: every rank's is checked),
     "d_x": this process's rows of d_x, "first_call_s", "warmup_s", "samples_s",
     "allreduce_samples_s" (where the engine exposes the all-reduce apart), "settings"}

Every replica computes the lesson's manual step on its n/R rows: the loss and gradients of its own
mean. The global mean's gradients are their average over replicas, so the engine all-reduces the
sum and each replica divides by R; d_x is per row and stays with its replica (divided by R too).
The samples are times of whole steps by the timing core (bench/timing.py; the host clock around
the step and its wait, or the framework's device timer for the one-device case), each ending when
this process's results are ready; the launcher keeps the slowest process's time of each step.
"""

import os
import time
from typing import Any

import numpy as np

from bench import frameworks, timing

OUTPUTS = ("loss", "d_w1", "d_b1", "d_w2", "d_b2")


def shard(a: np.ndarray, replicas: int, index: int) -> np.ndarray:
    rows = len(a) // replicas
    return a[index * rows : (index + 1) * rows]


def _loop(spec, call, wait, timer=None, before=None):
    """The first call, then `warmup` and `samples` steps timed by the timing core (bench/timing.py)
    with `timer` (the host clock by default), the same count in every process (a collective engine
    hangs if one process stops early); before() runs untimed before each (a barrier). wait(out)
    returns once `out` is ready, and what to keep of it. (the first call's outputs, the timings)."""
    last = [None]

    def step():
        last[0] = call()

    def sync():
        last[0] = wait(last[0])

    first = timing.first_call(step, sync)
    out = last[0]
    timed = timing.steady(
        step,
        sync,
        warmup=spec["warmup"],
        min_samples=spec["samples"],
        max_samples=spec["samples"],
        budget_s=0.0,
        timer=timer,
        before=before,
    )
    return out, {
        "first_call_s": first.first_call_s,
        "warmup_s": list(timed.warmup_s),
        "samples_s": list(timed.samples_s),
        "host_samples_s": list(timed.host_s),
        "allreduce_samples_s": [],
        "timer": (timer or timing.HOST).name,
    }


# ---------------------------------------------------------------- TensorFlow: tf.distribute


def tensorflow(spec: dict[str, Any], inputs: tuple[np.ndarray, ...]) -> dict[str, Any]:
    from bench.frameworks.tensorflow import without_jax

    with without_jax():  # a second of each worker's start (no op runs yet: the threads are set below)
        import tensorflow as tf

    from kernels import tf_steps

    R, engine = spec["replicas"], spec["engine"]
    threads = spec.get("threads")
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    if engine == "mirrored":
        if spec["device"] == "cpu":
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * R)
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        else:
            devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        if len(devices) < R:
            raise RuntimeError(f"{R} replicas asked, {len(devices)} {spec['device']} devices here")
        devices = devices[:R]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    else:
        if spec["device"] == "cpu":
            tf.config.set_visible_devices([], "GPU")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        devices = strategy.extended.worker_devices
    x, y, w1, b1, w2, b2 = inputs
    xs = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(shard(x, R, ctx.replica_id_in_sync_group))
    )
    ys = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(shard(y, R, ctx.replica_id_in_sync_group))
    )
    # the parameters as each replica's own copy on its device (not copied from one device every step)
    params = [
        strategy.experimental_distribute_values_from_function(lambda ctx, p=p: tf.constant(p)) for p in (w1, b1, w2, b2)
    ]
    local_step = tf_steps.manual_step
    if spec["backend"] == "xla":
        # XLA compiles each replica's step; the all-reduce stays the strategy's collective
        local_step = tf.function(tf_steps.manual_step, jit_compile=True)

    def replica_step(xr, yr, *ps):
        loss, d_x, d_w1, d_b1, d_w2, d_b2 = local_step(xr, yr, *ps)
        ctx = tf.distribute.get_replica_context()
        reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [loss, d_w1, d_b1, d_w2, d_b2])
        return [d_x / R] + [g / R for g in reduced]

    def step():
        return strategy.run(replica_step, args=(xs, ys, *params))

    if spec["backend"] in ("function", "xla"):
        step = tf.function(step)

    def sync(out):
        # every local replica's loss and last gradient: both come out of the all-reduce
        results = strategy.experimental_local_results(out)
        for r in results:
            r[1].numpy(), r[-1].numpy()
        return results

    results, timed = _loop(spec, step, sync)
    rows = [np.asarray(part[0]) for part in results]
    first = results[0]
    settings = {
        "strategy": type(strategy).__name__,
        "devices": list(devices),
        "replicas_in_sync": strategy.num_replicas_in_sync,
        "local_replicas": len(results),
        "threads": threads or "default",
        "cores": spec.get("cores"),
        "xla": "each replica's step jit-compiled; the all-reduce by the strategy" if spec["backend"] == "xla" else None,
        "cross_device_ops": type(getattr(strategy.extended, "_cross_device_ops", None)).__name__,
    }
    return {
        "outputs": dict(zip(OUTPUTS, (np.asarray(v) for v in first[1:]))),
        "d_x": np.concatenate(rows),
        "settings": settings,
        **timed,
    }


# ---------------------------------------------------------------- JAX: jax.sharding


def jax(spec: dict[str, Any], inputs: tuple[np.ndarray, ...]) -> dict[str, Any]:
    import jax as jx
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from kernels import jax_steps

    R = spec["replicas"]
    platform = "cpu" if spec["device"] == "cpu" else "gpu"
    devices = jx.devices(platform)
    if len(devices) < R:
        raise RuntimeError(f"{R} replicas asked, {len(devices)} {platform} devices here")
    mesh = Mesh(np.array(devices[:R]), ("batch",))
    rows, every = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())
    x, y, w1, b1, w2, b2 = inputs
    placed = [jx.device_put(x, rows), jx.device_put(y, rows), *(jx.device_put(p, every) for p in (w1, b1, w2, b2))]
    # the global step on sharded arrays: XLA's partitioner splits the batch and all-reduces every
    # sum over it (the loss, the weight and bias gradients); d_x stays sharded by rows
    step = jx.jit(
        jax_steps.manual_step,
        in_shardings=(rows, rows, every, every, every, every),
        out_shardings=(every, rows, every, every, every, every),
    )
    out, timed = _loop(spec, lambda: step(*placed), jx.block_until_ready)
    hlo = step.lower(*placed).compile().as_text() or ""
    settings = {
        "mesh": {"batch": R},
        "devices": [str(d) for d in devices[:R]],
        "cores": spec.get("cores"),
        "all_reduces_in_program": hlo.count("all-reduce(") + hlo.count("all-reduce-start("),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    loss, d_x, *grads = out
    return {
        "outputs": dict(zip(OUTPUTS, (np.asarray(v) for v in (loss, *grads)))),
        "d_x": np.asarray(d_x),
        "settings": settings,
        **timed,
    }


# ---------------------------------------------------------------- PyTorch: torch.distributed


def torch(spec: dict[str, Any], inputs: tuple[np.ndarray, ...]) -> dict[str, Any]:
    import torch as th
    import torch.distributed as dist

    from kernels import torch_steps

    gpu = spec["device"] != "cpu"
    backend = "nccl" if gpu else "gloo"
    dist.init_process_group(backend)
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        if world != spec["replicas"]:
            raise RuntimeError(f"{world} processes started, {spec['replicas']} replicas asked")
        threads = spec.get("threads")
        if threads and not gpu:
            th.set_num_threads(threads)
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        device = th.device(f"cuda:{local_rank}") if gpu else th.device("cpu")
        if gpu:
            if local_rank >= th.cuda.device_count():
                raise RuntimeError(f"local rank {local_rank}: only {th.cuda.device_count()} CUDA devices here")
            th.cuda.set_device(device)
        x, y, w1, b1, w2, b2 = inputs
        xr, yr = (th.from_numpy(np.ascontiguousarray(shard(a, world, rank))).to(device) for a in (x, y))
        params = [th.from_numpy(p).to(device) for p in (w1, b1, w2, b2)]
        local_step = torch_steps.manual_step
        if spec["backend"] == "compile":
            local_step = th.compile(torch_steps.manual_step)
        sync_device = th.cuda.synchronize if gpu else (lambda: None)
        allreduce = []

        def step():
            loss, d_x, d_w1, d_b1, d_w2, d_b2 = local_step(xr, yr, *params)
            grads = [loss.reshape(1), d_w1, d_b1, d_w2, d_b2]
            flat = th.cat([g.reshape(-1) for g in grads])  # one all-reduce of every gradient
            sync_device()
            t0 = time.perf_counter()
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            sync_device()
            allreduce.append(time.perf_counter() - t0)
            flat /= world
            parts, at = [], 0
            for g in grads:
                parts.append(flat[at : at + g.numel()].reshape(g.shape))
                at += g.numel()
            return [d_x / world, parts[0].reshape(()), *parts[1:]]

        def sync(out):
            sync_device()
            return out

        out, timed = _loop(spec, step, sync, before=dist.barrier)
        timed["allreduce_samples_s"] = allreduce[-spec["samples"] :] if spec["samples"] else []
        settings = {
            "process_group": backend,
            "world_size": world,
            "launcher": "torchrun",
            "threads": th.get_num_threads(),
            "cores": spec.get("cores"),
            "all_reduce": "one flat buffer of loss and every gradient, SUM / R",
        }
        return {
            "outputs": dict(zip(OUTPUTS, (o.cpu().numpy() for o in out[1:]))),  # every rank's, all checked
            "d_x": out[0].cpu().numpy(),
            "settings": settings,
            **timed,
        }
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------- one device, the same loop


def single(spec: dict[str, Any], inputs: tuple[np.ndarray, ...]) -> dict[str, Any]:
    """The plain case on one device, through the framework's contract (bench/frameworks/: its
    placement, compiled backend, sync and timer), timed by the same loop: what R=1 under an engine is
    compared with. Its CPU threads come from the launcher's environment (frameworks.thread_env)."""
    fw, device = frameworks.load(spec["framework"]), spec["device"]
    args = fw.to_device(inputs, "float32", device)
    fn = fw.compile("manual", spec["backend"])

    def call():
        with fw.placement(device):
            return fn(*args)

    def wait(out):
        fw.sync()
        return out

    out, timed = _loop(spec, call, wait, timer=fw.timer(device))
    loss, d_x, *grads = (fw.to_numpy(o) for o in out)
    return {
        "outputs": dict(zip(OUTPUTS, (loss, *grads))),
        "d_x": d_x,
        "settings": {"devices": [device], "threads": spec.get("threads") or "default", "cores": spec.get("cores")},
        **timed,
    }


ENGINES = {"": single, "mirrored": tensorflow, "multiworker": tensorflow, "sharding": jax, "torch.distributed": torch}


def run(spec: dict[str, Any], inputs: tuple[np.ndarray, ...]) -> dict[str, Any]:
    started = time.perf_counter()
    out = ENGINES[spec["engine"]](spec, inputs)
    out["wall_s"] = time.perf_counter() - started
    return out
