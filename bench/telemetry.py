"""What the device was doing while a group was timed, read every 50 ms from a thread: on a GPU its SM
and memory clocks, power, temperature and throttle reasons (NVML, through nvidia-ml-py); on a CPU
its frequency and the load of other processes than the harness's own (psutil; the harness's own:
this process and its workers), so a shared machine's noise shows. Each
timed sample is given the state of the reading in force when it began; a GPU sample taken while a
throttle reason held (power cap, thermal, hardware slowdown) is counted as throttled."""

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

# NVML clock event reasons that mean the clocks were held down: software power cap, hardware
# slowdown, software and hardware thermal slowdown, power brake (not idle, not an app setting).
THROTTLE_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80
THROTTLED_SHARE = 0.05  # a case with more throttled samples than this is listed under what to distrust
BUSY_CORES = 0.5  # a CPU case during which other processes kept this much of a core busy, likewise


def _nvml():
    """The pynvml module, initialised, or None where there is no NVML (no driver, no package)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


class Sampler:
    """`with Sampler(device) as s:` then s.summary(starts, samples_s) for each case timed meanwhile.
    nvml / psutil: the modules to read from (fakes in tests); found here when None."""

    def __init__(
        self,
        device: str,
        interval_s: float = 0.05,
        nvml: Any = None,
        psutil: Any = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.device, self.interval_s, self.clock = device, interval_s, clock
        self.readings: list[tuple[float, dict[str, Any]]] = []
        self.nvml: Any = None
        self.psutil: Any = None
        if device == "gpu":
            self.nvml = nvml or _nvml()
            if self.nvml is not None:
                self.handle = self.nvml.nvmlDeviceGetHandleByIndex(0)
                get = getattr(self.nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
                self._reasons = get or self.nvml.nvmlDeviceGetCurrentClocksThrottleReasons
        else:
            try:
                self.psutil = psutil or __import__("psutil")
                self.process = self.psutil.Process()
                self.cores = self.psutil.cpu_count() or 1
                self._tree: dict[int, Any] = {}  # this process and its workers, by pid (each keeps its last reading)
                self.psutil.cpu_percent(None)
                self._harness_cores()
            except Exception:
                self.psutil = None

    @property
    def source(self) -> str | None:
        return "nvml" if self.nvml is not None else "psutil" if self.psutil is not None else None

    def read(self) -> dict[str, Any]:
        """One reading now: {name: value}."""
        if self.nvml is not None:
            nv, h = self.nvml, self.handle
            return {
                "sm_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
                "mem_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
                "power_w": nv.nvmlDeviceGetPowerUsage(h) / 1000,
                "temp_c": nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
                "reasons": int(self._reasons(h)),
            }
        freq = self.psutil.cpu_freq()
        busy = self.psutil.cpu_percent(None) / 100 * self.cores  # cores busy, the harness's included
        own = self._harness_cores()  # cores the harness's processes kept busy
        return {"cpu_mhz": float(freq.current) if freq else None, "other_cores": max(0.0, busy - own)}

    def _harness_cores(self) -> float:
        """Cores this process and its descendants (the frameworks' workers, which run the timed
        calls) kept busy since the last reading: what is not other processes' load."""
        total = 0.0
        try:
            now = [self.process, *self.process.children(recursive=True)]
        except self.psutil.Error:
            now = [self.process]
        for proc in now:
            known = self._tree.setdefault(proc.pid, proc)  # a new worker's first reading is 0: it has no last one
            try:
                total += known.cpu_percent(None) / 100
            except self.psutil.Error:  # ended between the listing and the reading
                self._tree.pop(proc.pid, None)
        return total

    def _loop(self):
        while not self._stop.wait(self.interval_s):
            try:
                self.readings.append((self.clock(), self.read()))
            except Exception:  # a reading that fails is a reading missed, not a failed case
                continue

    def __enter__(self) -> "Sampler":
        if self.source:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        if self.source:
            self._stop.set()
            self._thread.join()
        return False

    def summary(self, starts: Sequence[float], samples_s: Sequence[float]) -> dict[str, Any]:
        """What held while the case's samples (begun at `starts`, lasting `samples_s`) were taken:
        a dict for its record ({} without readings)."""
        if not self.readings or not len(starts):
            return {}
        times = np.array([t for t, _ in self.readings])
        lo, hi = starts[0], starts[-1] + samples_s[-1]
        # the reading in force when the first sample began, and every one until the last ended
        first = max(0, int(np.searchsorted(times, lo, side="right")) - 1)
        inside = [r for _, r in self.readings[first : max(first + 1, int(np.searchsorted(times, hi, side="right")))]]
        out: dict[str, Any] = {"source": self.source, "readings": len(inside)}
        if self.nvml is not None:
            out["throttled_readings"] = sum(bool(r["reasons"] & THROTTLE_MASK) for r in inside)
            # each sample takes the state of the last reading before it began (or the first one after)
            at = np.clip(np.searchsorted(times, np.asarray(starts), side="right") - 1, 0, len(times) - 1)
            throttled = [bool(self.readings[i][1]["reasons"] & THROTTLE_MASK) for i in at]
            out.update(
                throttled_samples=int(sum(throttled)),
                sm_mhz=[min(r["sm_mhz"] for r in inside), max(r["sm_mhz"] for r in inside)],
                mem_mhz=[min(r["mem_mhz"] for r in inside), max(r["mem_mhz"] for r in inside)],
                power_w_max=max(r["power_w"] for r in inside),
                temp_c_max=max(r["temp_c"] for r in inside),
                reasons_seen=sorted({hex(r["reasons"]) for r in inside}),
            )
        else:
            mhz = [r["cpu_mhz"] for r in inside if r["cpu_mhz"]]
            other = [r["other_cores"] for r in inside]
            out.update(
                cpu_mhz=[min(mhz), max(mhz)] if mhz else None,
                other_cores=[float(np.median(other)), max(other)] if other else None,
            )
        return out

    def between(self, t0: float, t1: float) -> dict[str, Any]:
        """What held from clock time t0 to t1 (a stretch of work rather than timed samples)."""
        return self.summary([t0], [t1 - t0])

    def static(self) -> dict[str, Any]:
        """The device's fixed facts NVML gives (name, driver, clock and power limits); {} without NVML."""
        if self.nvml is None:
            return {}
        nv, h = self.nvml, self.handle
        facts = {
            "name": nv.nvmlDeviceGetName,
            "driver": lambda h: nv.nvmlSystemGetDriverVersion(),
            "max_sm_mhz": lambda h: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM),
            "max_mem_mhz": lambda h: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM),
            "power_limit_w": lambda h: nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1000,
        }
        out = {}
        for name, get in facts.items():
            try:
                out[name] = get(h)
            except Exception:  # noqa: BLE001 - a fact NVML does not give here is left out
                continue
        return out
