"""What runs inside a worker process: one function per engine, each taking the spec (a dict: engine,
backend, device, replicas, rank, warmup, samples, inputs) and the inputs (x, y, w1, b1, w2, b2 as
NumPy arrays, the global batch), and returning this process's part of the result:

    {"outputs": {"loss", "d_w1", "d_b1", "d_w2", "d_b2"} (all-reduced: every rank's is checked),
     "d_x": this process's rows of d_x, "first_call_s", "warmup_s", "samples_s",
     "allreduce_samples_s" (where the engine exposes the all-reduce apart), "settings"}

Every replica computes the lesson's manual step on its n/R rows: the loss and gradients of its own
mean. The global mean's gradients are their average over replicas, so the engine all-reduces the
sum and each replica divides by R; d_x is per row and stays with its replica (divided by R too).
The samples are host-clock times of whole steps, each ending when this process's results are
ready; the launcher keeps the slowest process's time of each step.
"""
import os
import time

import numpy as np

OUTPUTS = ("loss", "d_w1", "d_b1", "d_w2", "d_b2")


def _host(value):
    """A framework's array as a NumPy array on the host."""
    if type(value).__module__.startswith("torch"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def shard(a, replicas, index):
    rows = len(a) // replicas
    return a[index * rows:(index + 1) * rows]


def _loop(spec, call, sync, barrier=lambda: None, allreduce=None):
    """First call, warm-up and `samples` timed steps, the same count in every process (a
    collective engine hangs if one process stops early)."""
    t0 = time.perf_counter()
    out = sync(call())
    first = time.perf_counter() - t0
    warm = []
    for _ in range(spec["warmup"]):
        t0 = time.perf_counter()
        sync(call())
        warm.append(time.perf_counter() - t0)
    samples = []
    for _ in range(spec["samples"]):
        barrier()
        t0 = time.perf_counter()
        sync(call())
        samples.append(time.perf_counter() - t0)
    return out, {"first_call_s": first, "warmup_s": warm, "samples_s": samples,
                 "allreduce_samples_s": list(allreduce or [])[-len(samples):] if allreduce else []}


# ---------------------------------------------------------------- TensorFlow: tf.distribute

def tensorflow(spec, inputs):
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
        lambda ctx: tf.constant(shard(x, R, ctx.replica_id_in_sync_group)))
    ys = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(shard(y, R, ctx.replica_id_in_sync_group)))
    # the parameters as each replica's own copy on its device (not copied from one device every step)
    params = [strategy.experimental_distribute_values_from_function(lambda ctx, p=p: tf.constant(p))
              for p in (w1, b1, w2, b2)]
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

    results, timing = _loop(spec, step, sync)
    rows = [np.asarray(part[0]) for part in results]
    first = results[0]
    settings = {"strategy": type(strategy).__name__, "devices": list(devices),
                "replicas_in_sync": strategy.num_replicas_in_sync, "local_replicas": len(results),
                "threads": threads or "default", "cores": spec.get("cores"),
                "xla": "each replica's step jit-compiled; the all-reduce by the strategy" if spec["backend"] == "xla"
                else None,
                "cross_device_ops": type(getattr(strategy.extended, "_cross_device_ops", None)).__name__}
    return {"outputs": dict(zip(OUTPUTS, (np.asarray(v) for v in first[1:]))), "d_x": np.concatenate(rows),
            "settings": settings, **timing}


# ---------------------------------------------------------------- JAX: jax.sharding

def jax(spec, inputs):
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
    step = jx.jit(jax_steps.manual_step, in_shardings=(rows, rows, every, every, every, every),
                  out_shardings=(every, rows, every, every, every, every))
    out, timing = _loop(spec, lambda: step(*placed), jx.block_until_ready)
    hlo = step.lower(*placed).compile().as_text() or ""
    settings = {"mesh": {"batch": R}, "devices": [str(d) for d in devices[:R]], "cores": spec.get("cores"),
                "all_reduces_in_program": hlo.count("all-reduce(") + hlo.count("all-reduce-start("),
                "xla_flags": os.environ.get("XLA_FLAGS", "")}
    loss, d_x, *grads = out
    return {"outputs": dict(zip(OUTPUTS, (np.asarray(v) for v in (loss, *grads)))), "d_x": np.asarray(d_x),
            "settings": settings, **timing}


# ---------------------------------------------------------------- PyTorch: torch.distributed

def torch(spec, inputs):
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
            flat = th.cat([g.reshape(-1) for g in grads])       # one all-reduce of every gradient
            sync_device()
            t0 = time.perf_counter()
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            sync_device()
            allreduce.append(time.perf_counter() - t0)
            flat /= world
            parts, at = [], 0
            for g in grads:
                parts.append(flat[at:at + g.numel()].reshape(g.shape))
                at += g.numel()
            return [d_x / world, parts[0].reshape(()), *parts[1:]]

        def sync(out):
            sync_device()
            return out
        out, timing = _loop(spec, step, sync, barrier=dist.barrier, allreduce=allreduce)
        settings = {"process_group": backend, "world_size": world, "launcher": "torchrun",
                    "threads": th.get_num_threads(), "cores": spec.get("cores"), "all_reduce": "one flat buffer of loss and every gradient, SUM / R"}
        return {"outputs": dict(zip(OUTPUTS, (o.cpu().numpy() for o in out[1:]))),   # every rank's, all checked
                "d_x": out[0].cpu().numpy(), "settings": settings, **timing}
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------- one device, the same loop

def single(spec, inputs):
    """The plain case on one device, timed by the same loop: what R=1 under an engine is compared with."""
    fw, backend, gpu = spec["framework"], spec["backend"], spec["device"] != "cpu"
    if fw == "tensorflow":
        import tensorflow as tf

        from kernels import tf_steps
        if not gpu:
            tf.config.set_visible_devices([], "GPU")
            tf.config.threading.set_intra_op_parallelism_threads(spec["threads"] or 1)
            tf.config.threading.set_inter_op_parallelism_threads(spec["threads"] or 1)
        with tf.device("/GPU:0" if gpu else "/CPU:0"):
            args = [tf.constant(a) for a in inputs]
        fn = {"eager": tf_steps.manual_step, "function": tf.function(tf_steps.manual_step),
              "xla": tf.function(tf_steps.manual_step, jit_compile=True)}[backend]
        out, timing = _loop(spec, lambda: fn(*args), lambda o: (o[0].numpy(), o[-1].numpy()) and o)
        devices = [args[0].device]
    elif fw == "jax":
        import jax as jx

        from kernels import jax_steps
        device = jx.devices("gpu" if gpu else "cpu")[0]
        args = [jx.device_put(a, device) for a in inputs]
        fn = jx.jit(jax_steps.manual_step)
        out, timing = _loop(spec, lambda: fn(*args), jx.block_until_ready)
        devices = [str(device)]
    else:
        import torch as th

        from kernels import torch_steps
        device = th.device("cuda" if gpu else "cpu")
        if not gpu:
            th.set_num_threads(spec["threads"] or 1)
        args = [th.from_numpy(a).to(device) for a in inputs]
        fn = th.compile(torch_steps.manual_step) if backend == "compile" else torch_steps.manual_step
        sync = th.cuda.synchronize if gpu else (lambda: None)
        out, timing = _loop(spec, lambda: fn(*args), lambda o: (sync(), o)[1])
        devices = [str(device)]
    loss, d_x, *grads = (_host(o) for o in out)
    return {"outputs": dict(zip(OUTPUTS, (loss, *grads))), "d_x": d_x,
            "settings": {"devices": devices, "threads": spec.get("threads") or "default", "cores": spec.get("cores")},
            **timing}


ENGINES = {"": single, "mirrored": tensorflow, "multiworker": tensorflow, "sharding": jax, "torch.distributed": torch}


def run(spec, inputs):
    started = time.perf_counter()
    out = ENGINES[spec["engine"]](spec, inputs)
    out["wall_s"] = time.perf_counter() - started
    return out
