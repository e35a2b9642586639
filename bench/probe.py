"""A GPU probe: the device's measured ceilings per precision, the launch overhead of the lesson's
step, cold against warm L2, and NVML telemetry meanwhile, in well under a minute.

`python3 -m bench.probe --out FILE.json` on a CUDA machine with PyTorch (JAX optional). This is the
first measurement the project makes on a GPU; the harness proper (`bench run`) measures only float32
ceilings. Times come from CUDA events (device time) and from the host clock around the same calls
with a synchronize (host time), side by side, so their gap is the launch and sync overhead.
"""
import argparse
import json
import sys
import threading
import time

import numpy as np

# NVML "clock event reasons" that mean the clocks were held down (not idle, not an app setting).
THROTTLE_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80   # sw power cap, hw slowdown, sw/hw thermal, power brake


class Telemetry:
    """Samples SM/memory clocks, power, temperature and throttle reasons every `every_s` in a thread."""

    def __init__(self, every_s=0.05):
        self.every_s, self.samples, self.static = every_s, [], {}
        try:
            import pynvml
            pynvml.nvmlInit()
            self.nv, self.h = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception as e:   # no NVML: the probe still times, without telemetry
            self.nv, self.error = None, f"{type(e).__name__}: {e}"
            return
        nv, h = self.nv, self.h
        reasons = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or nv.nvmlDeviceGetCurrentClocksThrottleReasons
        self._reasons = lambda: reasons(h)
        self.static = {
            "name": nv.nvmlDeviceGetName(h),
            "driver": nv.nvmlSystemGetDriverVersion(),
            "max_sm_mhz": nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM),
            "max_mem_mhz": nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM),
            "power_limit_w": nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1000,
        }

    def _one(self):
        nv, h = self.nv, self.h
        return {"t": time.monotonic(), "sm_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
                "mem_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
                "power_w": nv.nvmlDeviceGetPowerUsage(h) / 1000,
                "temp_c": nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
                "reasons": int(self._reasons())}

    def _loop(self):
        while not self._stop.wait(self.every_s):
            self.samples.append(self._one())

    def __enter__(self):
        if self.nv:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.nv:
            self._stop.set()
            self._thread.join()

    def between(self, t0, t1):
        s = [x for x in self.samples if t0 <= x["t"] <= t1]
        if not s:
            return {}
        throttled = [x for x in s if x["reasons"] & THROTTLE_MASK]
        return {"samples": len(s), "throttled": len(throttled),
                "reasons_seen": sorted({hex(x["reasons"]) for x in s}),
                "sm_mhz": [min(x["sm_mhz"] for x in s), max(x["sm_mhz"] for x in s)],
                "power_w_max": max(x["power_w"] for x in s), "temp_c_max": max(x["temp_c"] for x in s)}


def timed(torch, fn, reps, warmup=3, flush=None):
    """(device ms per call by CUDA events, host ms per call synced), medians over `reps` calls;
    `flush` (untimed) runs before every call: the cold-cache case."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    dev, host = [], []
    for _ in range(reps):
        if flush:
            flush()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        host.append((time.perf_counter() - t0) * 1e3)
        dev.append(start.elapsed_time(end))
    return float(np.median(dev)), float(np.median(host))


def dispatch_ms(torch, fn, calls=200):
    """Host ms per call with no sync between calls (what the CPU spends launching)."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return (t1 - t0) / calls * 1e3, (time.perf_counter() - t0) / calls * 1e3


def torch_probe(tel, out, k):
    import torch
    from kernels import reference, torch_steps
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(0)
    out["gpu"] = {"name": props.name, "sms": props.multi_processor_count,
                  "l2_bytes": getattr(props, "L2_cache_size", None), "memory_bytes": props.total_memory,
                  "torch": torch.__version__, "cuda": torch.version.cuda, **tel.static}
    ceilings = out["ceilings"] = {}
    for name, dtype, tf32 in (("float32", torch.float32, False), ("tf32", torch.float32, True),
                              ("bfloat16", torch.bfloat16, False), ("float16", torch.float16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(k, k, device=dev, dtype=dtype)
        b = torch.randn(k, k, device=dev, dtype=dtype)
        t0 = time.monotonic()
        d, h = timed(torch, lambda: a @ b, reps=10)
        ceilings[f"gemm_{name}_tflops"] = 2 * k ** 3 / d / 1e9
        ceilings[f"gemm_{name}_telemetry"] = tel.between(t0, time.monotonic())
    torch.backends.cuda.matmul.allow_tf32 = False
    v = torch.ones(2 ** 28, device=dev)   # 1 GiB
    d, _ = timed(torch, lambda: v.clone(), reps=10)
    ceilings["copy_gbps"] = 2 * v.numel() * 4 / d / 1e6
    del a, b, v

    # The lesson's step: device vs host time, dispatch, cold vs warm L2, per precision.
    flush_buf = torch.empty(256 * 2 ** 20, dtype=torch.uint8, device=dev)   # 256 MiB > any L2
    flush = lambda: flush_buf.zero_()   # noqa: E731
    steps = out["steps"] = []
    rng = np.random.default_rng(0)
    for n in (1000, 10_000, 100_000, 1_000_000):
        x64 = rng.random((n, 784))
        y64 = rng.random(n)
        params = reference.init_params(784, 50, 0, np.float64)
        for prec, dtype, tf32 in (("float32", torch.float32, False), ("tf32", torch.float32, True),
                                  ("bfloat16", torch.bfloat16, False)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            args = tuple(torch.tensor(a, dtype=dtype, device=dev) for a in (x64, y64, *params))
            for step in ("manual", "autograd"):
                fn = lambda: torch_steps.STEPS[step](*args)   # noqa: E731
                got = fn()
                err = None
                if n <= 100_000:   # the float64 check, against the inputs as rounded to this precision
                    inputs = tuple(t.float().cpu().double().numpy() for t in args)
                    ref = reference.forward_backward(*inputs)
                    err = max(float(np.linalg.norm(g.float().cpu().double().numpy() - ref[o]) / np.linalg.norm(ref[o]))
                              for g, o in zip(got, reference.OUTPUTS))
                reps = 50 if n <= 100_000 else 20
                t0 = time.monotonic()
                warm_dev, warm_host = timed(torch, fn, reps)
                cold_dev, cold_host = timed(torch, fn, reps, flush=flush)
                disp, batch = dispatch_ms(torch, fn, calls=200 if n <= 100_000 else 20)
                steps.append({"n": n, "precision": prec, "step": step, "backend": "eager", "max_rel_err": err,
                              "warm_device_ms": warm_dev, "warm_host_ms": warm_host,
                              "cold_device_ms": cold_dev, "cold_host_ms": cold_host,
                              "dispatch_ms": disp, "batched_ms": batch,
                              "telemetry": tel.between(t0, time.monotonic())})
                print(json.dumps(steps[-1]), flush=True)
        if n == 1000:   # launch overhead: CUDA graphs through torch.compile(mode="reduce-overhead")
            torch.backends.cuda.matmul.allow_tf32 = False
            args = tuple(torch.tensor(a, dtype=torch.float32, device=dev) for a in (x64, y64, *params))
            for mode in ("default", "reduce-overhead"):
                try:
                    c = torch.compile(torch_steps.manual_step, mode=mode, dynamic=False)
                    t0 = time.monotonic()
                    for _ in range(3):
                        c(*args)
                    compile_s = time.monotonic() - t0
                    d, h = timed(torch, lambda: c(*args), 50)
                    disp, batch = dispatch_ms(torch, lambda: c(*args))
                    steps.append({"n": n, "precision": "float32", "step": "manual", "backend": f"compile:{mode}",
                                  "warm_device_ms": d, "warm_host_ms": h, "dispatch_ms": disp, "batched_ms": batch,
                                  "first_calls_s": compile_s})
                except Exception as e:
                    steps.append({"n": n, "backend": f"compile:{mode}", "error": f"{type(e).__name__}: {e}"[:300]})
                print(json.dumps(steps[-1]), flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False


def jax_probe(out, k):
    import jax
    import jax.numpy as jnp
    res = out["jax"] = {"version": jax.__version__, "devices": [str(d) for d in jax.devices()]}
    for name, dtype, prec in (("float32", jnp.float32, "highest"), ("tf32", jnp.float32, "tensorfloat32"),
                              ("bfloat16", jnp.bfloat16, "default")):
        a = jax.random.normal(jax.random.key(0), (k, k), dtype)
        f = jax.jit(lambda a, b, p=prec: jnp.matmul(a, b, precision=p))
        f(a, a).block_until_ready()
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(10):
                r = f(a, a)
            r.block_until_ready()
            best = min(best, (time.perf_counter() - t0) / 10)
        res[f"gemm_{name}_tflops"] = 2 * k ** 3 / best / 1e12


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m bench.probe")
    p.add_argument("--out", required=True)
    p.add_argument("--gemm-size", type=int, default=8192, help="k of the k x k x k GEMMs")
    args = p.parse_args(argv)
    out = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    import torch
    if not torch.cuda.is_available():
        print("bench.probe: no CUDA device here", file=sys.stderr)
        return 2
    tel = Telemetry()
    with tel:
        t0 = time.monotonic()
        try:
            torch_probe(tel, out, args.gemm_size)
        except Exception as e:
            out["torch_error"] = f"{type(e).__name__}: {e}"[:500]
        try:
            jax_probe(out, args.gemm_size)
        except Exception as e:
            out["jax_error"] = f"{type(e).__name__}: {e}"[:500]
        out["telemetry"] = tel.between(t0, time.monotonic()) or {"error": getattr(tel, "error", None)}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1, default=str)
    print(json.dumps({k: v for k, v in out.items() if k != "steps"}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
