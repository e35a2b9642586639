"""The fingerprint of a run: machine, OS, Python, threads, flags and source tree, as every record
carries it (Record.fingerprint); framework adapters add their own part. Which machine it names is
bench/machine.py's to say."""

import datetime
import importlib.metadata
import os
import platform
import shutil
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path

from bench import REPO, git, machine

# Environment variables that change results or speed; recorded as value or None.
ENV_VARS = (
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_XLA_FLAGS",
    "XLA_FLAGS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "CUDA_VISIBLE_DEVICES",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "TF_GPU_ALLOCATOR",
    "TF_DETERMINISTIC_OPS",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "JAX_PLATFORMS",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "BENCH_JAX_THREADS",
    "CUDA_CACHE_MAXSIZE",
)

# Distributions whose versions are recorded (looked up by metadata, never imported).
PACKAGES = (
    "numpy",
    "pandas",
    "matplotlib",
    "scipy",
    "psutil",
    "pytest_benchmark",
    "tensorflow",
    "torch",
    "jax",
    "jaxlib",
    "keras",
)

# SIMD-related CPU flags worth recording, in this order.
SIMD_FLAGS = ("avx", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "fma", "neon")

# nvidia-smi query fields -> fingerprint keys, in query order.
GPU_FIELDS = (
    ("name", "name"),
    ("driver_version", "driver_version"),
    ("memory.total", "memory_total_bytes"),
    ("memory.free", "memory_free_bytes"),
    ("clocks.sm", "clock_sm_mhz"),
    ("clocks.max.sm", "clock_max_sm_mhz"),
    ("power.limit", "power_limit_w"),
    ("temperature.gpu", "temperature_c"),
    ("mig.mode.current", "mig_mode"),
)

# What must match for two runs' times to be comparable: bench/machine.py's identity.
IDENTITY_KEYS = machine.IDENTITY_KEYS

# What differences() compares by default: the identity plus these fingerprint keys.
DEFAULT_DIFF_KEYS = IDENTITY_KEYS + ("env", "cpu_count_logical", "git_commit", "git_dirty", "data_source")

SUBPROCESS_TIMEOUT_S = 10


# ---------------------------------------------------------------- helpers
# Every helper returns None (or an empty container) on failure; none raises.


def _psutil():
    """The psutil module, or None when it is not installed (or blocked via sys.modules)."""
    try:
        import psutil

        return psutil
    except ImportError:
        return None


def _run(args: list[str]) -> str | None:
    """stdout of a command that exited 0 within the timeout, else None."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def _cpuinfo_records() -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per blank-line separated block; [] where unavailable."""
    text = _read_text("/proc/cpuinfo") or ""
    records = []
    for block in text.split("\n\n"):
        record = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                record[key.strip()] = value.strip()
        if record:
            records.append(record)
    return records


def _cpu_model(cpuinfo: list[dict[str, str]]) -> str | None:
    for record in cpuinfo:
        if record.get("model name"):
            return record["model name"]
    return platform.processor() or None


def _cpu_count_logical() -> int | None:
    psutil = _psutil()
    if psutil is not None:
        try:
            return psutil.cpu_count(logical=True) or os.cpu_count()
        except Exception:
            pass
    return os.cpu_count()


def _cpu_count_physical(cpuinfo: list[dict[str, str]]) -> int | None:
    """psutil's count, else distinct (physical id, core id) pairs in /proc/cpuinfo, else os.cpu_count()."""
    psutil = _psutil()
    if psutil is not None:
        try:
            count = psutil.cpu_count(logical=False)
            if count:
                return count
        except Exception:
            pass
    cores = {(r.get("physical id"), r["core id"]) for r in cpuinfo if "core id" in r}
    return len(cores) or os.cpu_count()


def _cpu_affinity() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _cpu_flags_simd(cpuinfo: list[dict[str, str]]) -> list[str]:
    """The SIMD_FLAGS present in the first processor's flags (x86 "flags", ARM "Features")."""
    flags: set[str] = set()
    for record in cpuinfo:
        line = record.get("flags") or record.get("Features")
        if line:
            flags = set(line.split())
            break
    if "asimd" in flags:  # aarch64 reports NEON as "asimd"
        flags.add("neon")
    return [flag for flag in SIMD_FLAGS if flag in flags]


def _cpu_freq_mhz() -> float | None:
    psutil = _psutil()
    if psutil is None:
        return None
    try:
        freq = psutil.cpu_freq()
    except Exception:
        return None
    return float(freq.current) if freq is not None else None


def _load_avg() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def memory_bytes() -> tuple[int | None, int | None]:
    """(total, available) bytes from psutil, else /proc/meminfo, else (None, None)."""
    psutil = _psutil()
    if psutil is not None:
        try:
            mem = psutil.virtual_memory()
            return int(mem.total), int(mem.available)
        except Exception:
            pass
    fields = {}
    for line in (_read_text("/proc/meminfo") or "").splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[key.strip()] = int(parts[0]) * 1024  # values are in kB
    return fields.get("MemTotal"), fields.get("MemAvailable")


def _gpu_value(key: str, raw: str):
    """One nvidia-smi field: "[N/A]"-style -> None, memory MiB -> bytes, numbers -> int/float."""
    raw = raw.strip()
    if not raw or raw.startswith("[") or raw == "N/A":
        return None
    if key in ("name", "driver_version", "mig_mode"):
        return raw
    try:
        number = float(raw)
    except ValueError:
        return raw
    if key.endswith("_bytes"):
        return int(number * 1024 * 1024)
    return int(number) if number.is_integer() else number


def gpus() -> list[dict]:
    """One dict per GPU from nvidia-smi; [] when it is missing or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    query = ",".join(field for field, _ in GPU_FIELDS)
    out = _run([exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"])
    if out is None:
        return []
    gpus = []
    for line in out.splitlines():
        values = line.split(",")
        if len(values) != len(GPU_FIELDS):
            continue
        gpus.append({key: _gpu_value(key, raw) for (_, key), raw in zip(GPU_FIELDS, values)})
    return gpus


def git_info(repo: Path = REPO) -> dict:
    """git_commit, git_dirty, git_branch of `repo`; all None without git or unless `repo` itself is
    the checkout (a copied tree inside some other repository reports None)."""
    info: dict[str, str | bool | None] = {"git_commit": None, "git_dirty": None, "git_branch": None}
    if shutil.which("git") is None or not (repo / ".git").exists():
        return info
    info["git_commit"] = git.head(repo)
    status = git.out(repo, "status", "--porcelain")
    if status is not None:
        # Untracked files under results/ are run outputs, not source changes.
        changes = [
            line
            for line in status.splitlines()
            if line.strip() and not (line.startswith("?? ") and line[3:].strip('"').startswith("results/"))
        ]
        info["git_dirty"] = bool(changes)
    info["git_branch"] = git.out(repo, "symbolic-ref", "--short", "-q", "HEAD") or None  # None when detached
    return info


def host_id() -> str | None:
    """A short stable id of this installation of the OS (a hash of /etc/machine-id, else of the
    host name): what tells two hosts of the same CPU model apart (bench/machine.py noise_key)."""
    import hashlib

    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        text = (_read_text(path) or "").strip()
        if text:
            return hashlib.sha256(text.encode()).hexdigest()[:12]
    name = socket.gethostname()
    return hashlib.sha256(f"host:{name}".encode()).hexdigest()[:12] if name else None


def _version(dist: str) -> str | None:
    """Installed version of a distribution via its metadata; never imports the package."""
    for name in (dist, dist.replace("_", "-")):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        except Exception:
            return None
    return None


def collect(
    frameworks: dict[str, dict] | None = None, *, data_source: str | None = None, seeds: dict | None = None
) -> dict:
    """A JSON-serialisable dict describing where and how a run happened."""
    cpuinfo = _cpuinfo_records()
    memory_total, memory_available = memory_bytes()
    packages = {name: _version(name) for name in PACKAGES}
    return {
        "hostname": socket.gethostname(),
        "host_id": host_id(),
        "os": platform.platform(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(cpuinfo),
        "cpu_count_logical": _cpu_count_logical(),
        "cpu_count_physical": _cpu_count_physical(cpuinfo),
        "cpu_affinity": _cpu_affinity(),
        "cpu_flags_simd": _cpu_flags_simd(cpuinfo),
        "cpu_freq_mhz": _cpu_freq_mhz(),
        "load_avg": _load_avg(),
        "memory_total_bytes": memory_total,
        "memory_available_bytes": memory_available,
        "gpus": gpus(),
        "env": {name: os.environ.get(name) for name in ENV_VARS},
        **git_info(),
        "numpy": packages["numpy"],
        "packages": packages,
        "frameworks": dict(frameworks or {}),
        "data_source": data_source,
        "seeds": seeds,
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _diff(path: str, a, b) -> list[str]:
    """Lines for one value; dicts (or a dict against None/missing) are compared key by key."""
    if isinstance(a, dict) or isinstance(b, dict):
        if (a is None or isinstance(a, dict)) and (b is None or isinstance(b, dict)):
            a, b = a or {}, b or {}
            lines = []
            for key in sorted(set(a) | set(b), key=str):
                lines += _diff(f"{path}.{key}", a.get(key), b.get(key))
            return lines
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def differences(a: dict, b: dict, keys: Iterable[str] | None = None) -> list[str]:
    """One line per difference between two fingerprints, e.g. "cpu_model: 'CPU A' vs 'CPU B'":
    by default the machine's identity (bench/machine.py) plus env, cpu_count_logical, git_commit,
    git_dirty and data_source; nested dicts key by key ("env.TF_ENABLE_ONEDNN_OPTS: None vs '0'",
    "frameworks.tensorflow.version: '2.21.0' vs '2.20.0'")."""
    # A key in IDENTITY_KEYS is read from identity(); any other from the fingerprint itself.
    # Missing keys (older records) count as None, and a missing dict as an empty one.
    ida, idb = machine.Machine.of(a).identity(), machine.Machine.of(b).identity()
    # A framework one run loaded and the other did not is no difference between them (each run's
    # frameworks are listed on their own); the versions of the frameworks both loaded are.
    shared = set(ida["framework_versions"]) & set(idb["framework_versions"])
    for ident in (ida, idb):
        ident["framework_versions"] = {k: v for k, v in ident["framework_versions"].items() if k in shared}
    lines = []
    for key in DEFAULT_DIFF_KEYS if keys is None else keys:
        va = ida[key] if key in IDENTITY_KEYS else a.get(key)
        vb = idb[key] if key in IDENTITY_KEYS else b.get(key)
        lines += _diff(key, va, vb)
    return lines
