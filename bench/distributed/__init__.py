"""Data-parallel: the lesson's hand-written step over R replicas, each on its share of the global
batch, its gradients all-reduced by the framework's own engine (never by this harness):

    engine             framework   backends                 processes
    mirrored           tensorflow  eager, function, xla     1 (tf.distribute.MirroredStrategy over R devices)
    multiworker        tensorflow  eager, function, xla     R (MultiWorkerMirroredStrategy, TF_CONFIG)
    sharding           jax         jit                      1 (a jax.sharding Mesh; XLA inserts the all-reduce)
    torch.distributed  torch       eager, compile           R (torchrun; gloo on CPU, NCCL on GPU)

engines.py: what runs inside a worker process, one function per engine; worker.py: a worker's
entry point (a spec in, its results out as files); launch.py: starting the processes with ports,
devices and a timeout, collecting their results, the correctness check against the float64
reference on the global batch, and the record. `python -m bench scale` (bench/cli/scale.py) runs a
grid of them; the report's "Scaling" section and plot read the records.
"""
