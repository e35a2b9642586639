"""Environments per requirement set (`run --env`): a set of pip requirements ("tensorflow==2.20.0",
several packages, or a requirements, pyproject or pylock file) is resolved by uv against the
registry, built once into a cache folder keyed by the resolved set, and used as the interpreter of
the frameworks' worker processes (bench/run/worker.py), which import this checkout's bench. A build
happens in a folder of its own and is renamed into place when complete, so an interrupted build is
never used (it is rebuilt). The cache keeps under a size limit, least recently used out first;
`python -m bench env list` and `env prune` show and trim it."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

# What a worker imports beyond its framework (bench/run/worker.py and what it loads): every set gets
# them, at the versions its resolution allows (so a set's own pins of them win).
WORKER_NEEDS = ("numpy", "psutil", "ml-dtypes")

CACHE_VARIABLE = "BENCH_ENV_CACHE"  # the cache folder, else ~/.cache/backprop-bench/envs
LIMIT_VARIABLE = "BENCH_ENV_CACHE_LIMIT_GB"  # its size limit, else DEFAULT_LIMIT_GB
DEFAULT_LIMIT_GB = 20.0
RESOLVE_TIMEOUT_S = 300
BUILD_TIMEOUT_S = 1800
META = "bench-env.json"  # in a complete environment: its name, requirements, pins, build time
BUILDING = ".building-"  # a build in progress (or interrupted): <key>.building-<pid>


class VenvError(RuntimeError):
    """A requirement set cannot be resolved or built; str() is one line."""


@dataclass(frozen=True)
class Env:
    """A built environment: the set's `name` as asked, the requirements it came from, the resolved
    `pins` ("dist==version", sorted), its `key` (a hash of the interpreter's version and the pins)
    and its folder."""

    name: str
    requirements: tuple[str, ...]
    pins: tuple[str, ...]
    key: str
    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def versions(self, dists: Iterable[str] | None = None) -> dict[str, str | None]:
        """{distribution: resolved version} of `dists` (None where the set has none), else of every pin."""
        return versions(self.pins, dists)


def versions(pins: Iterable[str], dists: Iterable[str] | None = None) -> dict[str, str | None]:
    """{distribution: version} of `dists` among "name==version" pins (None where none pins it), else of every pin."""
    pinned = {normalise(p.split("==")[0]): p.split("==", 1)[1] for p in pins if "==" in p}
    if dists is None:
        return dict(pinned)
    return {d: pinned.get(normalise(d)) for d in dists}


def normalise(dist: str) -> str:
    """A distribution's name as the registry compares them (PEP 503): ml_dtypes == ML-Dtypes == ml-dtypes."""
    return re.sub(r"[-_.]+", "-", dist).lower().strip()


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "backprop-bench" / "envs")


def limit_bytes() -> int:
    raw = os.environ.get(LIMIT_VARIABLE)
    try:
        gb = float(raw) if raw else DEFAULT_LIMIT_GB
    except ValueError:
        raise VenvError(f"{LIMIT_VARIABLE}={raw!r} is not a number of GB") from None
    return int(gb * 2**30)


def uv() -> str:
    """The uv executable: beside this interpreter (the project's venv installs it), else on PATH."""
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    if not found:
        raise VenvError("uv is not installed (pip install uv): it resolves and builds the --env environments")
    return found


def parse(spec: str) -> tuple[str, list[str]]:
    """(name, requirements) of one --env value: a file (requirements.txt, pyproject.toml,
    pylock.toml: given to uv as it is), else requirements separated by spaces, each checked as a pip
    requirement. VenvError naming what is wrong."""
    spec = spec.strip()
    if not spec:
        raise VenvError("--env '': an empty requirement set")
    path = Path(spec)
    if path.is_file():
        return path.name, [str(path.resolve())]
    if path.suffix in (".txt", ".toml", ".lock", ".in") or os.sep in spec:
        raise VenvError(f"--env {spec!r}: no such file")
    from packaging.requirements import InvalidRequirement, Requirement

    lines = spec.split()
    for line in lines:
        try:
            Requirement(line)
        except InvalidRequirement as e:
            why = " ".join(str(e).split())
            raise VenvError(f"--env {spec!r}: {line!r} is not a pip requirement ({why})") from None
    return spec, lines


def _last_error(stderr: str) -> str:
    """uv's reason in one line: its error, its first and last cause, and its hint's first sentence."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("error:")]
    causes = [line.split(":", 1)[1].strip().rstrip(".") for line in lines if line.startswith("cause:")]
    hints = [line.split(":", 1)[1].strip().split(". ")[0].rstrip(".") for line in lines if line.startswith("hint:")]
    if not errors:
        return (lines[-1] if lines else "no output")[:400]
    parts = [errors[0].rstrip(":")] + causes[:1] + causes[1:][-1:] + hints[:1]
    return ": ".join(parts[:2]) + "".join(f" ({p})" for p in parts[2:])


def _uv(args: list[str], what: str, timeout_s: float, stdin: str | None = None) -> str:
    try:
        done = subprocess.run([uv(), *args], input=stdin, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise VenvError(f"{what}: uv did not finish within {timeout_s:.0f} s") from None
    except OSError as e:
        raise VenvError(f"{what}: uv could not run ({e})") from None
    if done.returncode != 0:
        raise VenvError(f"{what}: {_last_error(done.stderr)}")
    return done.stdout


def resolve(spec: str) -> tuple[str, list[str], list[str]]:
    """(name, requirements, pins) of one --env value, resolved by uv for this interpreter (with
    WORKER_NEEDS); VenvError with the resolver's one line (no network, an unknown version)."""
    name, requirements = parse(spec)
    with tempfile.TemporaryDirectory() as tmp:
        needs = Path(tmp) / "worker-needs.txt"
        needs.write_text("\n".join(WORKER_NEEDS) + "\n")
        sources = requirements if len(requirements) == 1 and Path(requirements[0]).is_file() else []
        stdin = None if sources else "\n".join(requirements) + "\n"
        out = _uv(
            [
                "pip",
                "compile",
                "--quiet",
                "--no-header",
                "--no-annotate",
                "--python",
                sys.executable,
                *(sources or ["-"]),
                str(needs),
            ],
            f"--env {name!r}",
            RESOLVE_TIMEOUT_S,
            stdin,
        )
    pins = sorted(
        {
            line.strip()
            for line in out.splitlines()  # "name==version", or "name @ URL" (a direct reference)
            if ("==" in line or " @ " in line) and not line.lstrip().startswith(("#", "-"))
        },
        key=str.lower,
    )
    if not pins:
        raise VenvError(f"--env {name!r}: the resolver returned no packages")
    return name, requirements, pins


def key_of(pins: Iterable[str]) -> str:
    python = ".".join(map(str, sys.version_info[:3]))
    return hashlib.sha256("\n".join([f"python {python}", *pins]).encode()).hexdigest()[:16]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_builds(root: Path) -> None:
    """Remove the folders of builds whose process is gone (interrupted): they are never used."""
    for tmp in root.glob(f"*{BUILDING}*"):
        pid = tmp.name.rsplit(BUILDING, 1)[1]
        if not (pid.isdigit() and _alive(int(pid))):
            shutil.rmtree(tmp, ignore_errors=True)


def build(
    spec: str,
    log: Callable[[str], None] | None = None,
    name: str | None = None,
    resolved: tuple[str, list[str], list[str]] | None = None,
) -> tuple[Env, float]:
    """The Env of one --env value and the seconds set-up took: resolved, then taken from the cache,
    or built (uv venv, then the exact pins installed, without dependencies: the resolution is the
    whole set) into a folder of its own, renamed into the cache when complete. `log(line)` hears a
    build start; `name` replaces the set's own (a file's name) in what is shown; `resolved`: what
    resolve(spec) returned, where it was called already. VenvError in one line."""
    started = time.perf_counter()
    asked, requirements, pins = resolved or resolve(spec)
    name = name or asked
    key = key_of(pins)
    root = cache_dir()
    path = root / key
    if not (path / META).exists():
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise VenvError(f"the environment cache {root} ({CACHE_VARIABLE}): {e.strerror or e}") from None
        _remove_stale_builds(root)
        if path.exists():  # a folder without its META is not an environment this module made whole
            shutil.rmtree(path, ignore_errors=True)
        if log:
            log(f"building the environment for --env {name!r} ({len(pins)} packages) in {path}")
        tmp = root / f"{key}{BUILDING}{os.getpid()}"
        try:
            _uv(
                ["venv", "--quiet", "--relocatable", "--python", sys.executable, str(tmp)],
                f"--env {name!r}",
                BUILD_TIMEOUT_S,
            )
            with tempfile.NamedTemporaryFile("w", suffix=".txt") as pinned:
                pinned.write("\n".join(pins) + "\n")
                pinned.flush()
                _uv(
                    [
                        "pip",
                        "install",
                        "--quiet",
                        "--no-deps",
                        "--python",
                        str(tmp / "bin" / "python"),
                        "-r",
                        pinned.name,
                    ],
                    f"--env {name!r}",
                    BUILD_TIMEOUT_S,
                )
            (tmp / META).write_text(
                json.dumps(
                    dict(
                        name=name,
                        requirements=requirements,
                        pins=pins,
                        key=key,
                        python=sys.version.split()[0],
                        build_s=round(time.perf_counter() - started, 1),
                    ),
                    indent=1,
                )
            )
            try:
                tmp.rename(path)
            except OSError:  # another run built it meanwhile: theirs is as good
                if not (path / META).exists():
                    raise
        except OSError as e:  # the cache's disk full or not writable
            raise VenvError(f"--env {name!r}: building in {root}: {e.strerror or e}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        prune(limit_bytes(), keep=(key,))
    (path / META).touch()  # its last use: what prune() keeps longest
    return Env(name, tuple(requirements), tuple(pins), key, path), time.perf_counter() - started


def resolve_all(specs: Iterable[str]) -> list[tuple[str, list[str], list[str]]]:
    """resolve() of each --env value, in order; VenvError for the first that cannot be resolved, for
    two values that resolve alike or share a name, and for a bad cache limit: nothing is built
    before every set resolves."""
    limit_bytes()
    resolved = [resolve(spec) for spec in specs]
    names = [name for name, _, _ in resolved]
    if len(set(names)) < len(names):
        raise VenvError(f"--env given twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    keys: dict[str, str] = {}
    for name, _, pins in resolved:
        other = keys.setdefault(key_of(pins), name)
        if other != name:
            raise VenvError(f"--env {other!r} and {name!r} resolve to the same packages: one environment")
    return resolved


def build_all(
    specs: Iterable[str],
    log: Callable[[str], None] | None = None,
    resolved: list[tuple[str, list[str], list[str]]] | None = None,
) -> list[Env]:
    """Each --env value's Env, in order (built where the cache lacks it); `resolved`: what
    resolve_all(specs) returned, where it was called already. VenvError in one line."""
    specs = list(specs)
    out = []
    for spec, done in zip(specs, resolved or resolve_all(specs)):
        env, seconds = build(spec, log, resolved=done)
        if log:
            log(f"--env {env.name!r}: environment {env.key} ready in {seconds:.1f} s")
        out.append(env)
    return out


def disk_usage(paths: Iterable[Path]) -> tuple[int, int]:
    """(bytes, own bytes) of the files under `paths`, each file counted once: own are those no link
    outside `paths` holds (what removing them frees; uv links the rest from its cache)."""
    links: dict[tuple[int, int], list[int]] = {}  # inode -> [blocks, links in total, links found here]
    for path in paths:
        for folder, _, files in os.walk(path):
            for f in files:
                try:
                    st = os.lstat(os.path.join(folder, f))
                except OSError:
                    continue
                entry = links.setdefault((st.st_dev, st.st_ino), [st.st_blocks * 512, st.st_nlink, 0])
                entry[2] += 1
    total = sum(blocks for blocks, _, _ in links.values())
    own = sum(blocks for blocks, nlink, here in links.values() if here >= nlink)
    return total, own


@dataclass(frozen=True)
class Entry:
    """One environment of the cache as `env list` shows it."""

    key: str
    name: str
    pins: tuple[str, ...]
    bytes: int
    last_used: float  # epoch seconds
    path: Path


def entries(root: Path | None = None) -> list[Entry]:
    """The complete environments in the cache, most recently used first."""
    root = root or cache_dir()
    out = []
    for meta in root.glob(f"*/{META}"):
        if BUILDING in meta.parent.name:
            continue
        try:
            facts = json.loads(meta.read_text())
        except (OSError, ValueError):
            facts = {}
        out.append(
            Entry(
                meta.parent.name,
                str(facts.get("name", "?")),
                tuple(facts.get("pins", ())),
                disk_usage([meta.parent])[0],
                meta.stat().st_mtime,
                meta.parent,
            )
        )
    return sorted(out, key=lambda e: -e.last_used)


def prune(max_bytes: int, keep: Iterable[str] = (), root: Path | None = None) -> list[Entry]:
    """Remove the least recently used environments until the cache holds at most `max_bytes`
    (never those in `keep`), and every interrupted build; the removed."""
    root = root or cache_dir()
    if not root.exists():
        return []
    _remove_stale_builds(root)
    kept = set(keep)
    listed = entries(root)
    total = sum(e.bytes for e in listed)
    removed = []
    for entry in reversed(listed):
        if total <= max_bytes:
            break
        if entry.key in kept:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        total -= entry.bytes
        removed.append(entry)
    return removed
