"""The regression gate: a base revision's harness and the working tree's run alternately in separate
processes (A B B A ...) and compared pair by pair, or the working tree against a stored baseline
normalised by each run's GEMM ceiling; A/A runs measure the rule's false-positive rate."""
import datetime
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

from bench import compare, env, records

HARNESS = "bench/__main__.py"            # a revision without it has nothing to compare
DEFAULT_PAIRS = 4
DEFAULT_SIZE = "5000,784,50"
DEFAULT_STEPS = ("manual", "tape")
DEFAULT_BACKENDS = ("eager", "function", "xla")
DEFAULT_BUDGET_S = 0.5                   # timed seconds a case a process (`run --budget`)
# One CPU thread a process: the gate asks whether the code got slower, not how it scales, and a
# one-thread process does not depend on whether a neighbour holds the machine's other cores. On
# the shared 2-core machine this was tuned on, two-thread processes switched between two speeds
# about 2x apart with the other core's load (A/A pair ratios 0.55-1.97, sd of log 0.22-0.29);
# one-thread processes gave A/A pair ratios 0.86-1.13 (sd of log 0.035-0.07).
DEFAULT_THREADS = 1
PROCESS_TIMEOUT_S = 600
AA_FILE = Path("results") / "baselines" / "aa.json"


class GateError(ValueError):
    """The gate cannot run what was asked (bad revision, a candidate that crashes); one line."""


class NothingToCompare(Exception):
    """There is no base to compare with (no parent commit, no harness in it, no baseline here);
    the gate passes and says why."""


@dataclass(frozen=True)
class RunSpec:
    """What every process measures, as `python -m bench run` flags (besides --out). The base
    revision's CLI runs them too, so only long-standing flags are used, and --budget only where
    both harnesses accept it (--quick otherwise)."""
    size: str = DEFAULT_SIZE
    steps: tuple = DEFAULT_STEPS
    backends: tuple = DEFAULT_BACKENDS
    device: str = "all"
    framework: str = "tensorflow"
    budget_s: float = DEFAULT_BUDGET_S
    threads: int = DEFAULT_THREADS    # CPU threads a process; 0: the frameworks' own default

    def env(self):
        """Environment variables every process runs with (both sides alike; records keep them)."""
        if not self.threads:
            return {}
        n = str(self.threads)
        return {"TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": n, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}

    def args(self, budget=True):
        timing = ["--budget", f"{self.budget_s:g}"] if budget else ["--quick"]
        return ["run", *timing, "--framework", self.framework, "--size", self.size, "--step", *self.steps,
                "--backend", *self.backends, "--device", self.device]

    def describe(self):
        threads = f"{self.threads} thread{'s' if self.threads > 1 else ''}" if self.threads else "default threads"
        return (f"{self.framework} steps {','.join(self.steps)} x backends {','.join(self.backends)} "
                f"at {self.size} on {self.device}, {self.budget_s:g} s a case, {threads}")


@dataclass(frozen=True)
class Process:
    """One `python -m bench run` in one tree: its exit code, its records (None when it wrote none)
    and the last line of its stderr."""
    tree: str
    rc: int
    records: tuple | None
    wall_s: float
    last_line: str = ""


def _last_line(text):
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _child_env(tree, extra=None):
    """This environment (plus `extra`) with `tree`'s packages first on the path, so its own bench
    and kernels load."""
    path = os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])
    return dict(os.environ, **(extra or {}), PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=path)


def accepts(tree, flag):
    """Whether `tree`'s `python -m bench run` has `flag` (read from its --help)."""
    try:
        done = subprocess.run([sys.executable, "-m", "bench", "run", "--help"], cwd=tree, env=_child_env(tree),
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and flag in done.stdout


def run_harness(tree, out, args, extra_env=None, timeout_s=PROCESS_TIMEOUT_S):
    """Run `tree`'s own harness with this interpreter: `python -m bench <args> --out <out>`, with
    `extra_env` set; a Process."""
    tree, out = Path(tree), Path(out)
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "bench", *args, "--out", str(out)], cwd=tree,
                              env=_child_env(tree, extra_env), capture_output=True, text=True, timeout=timeout_s)
        rc, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired:
        rc, stderr = 124, f"timed out after {timeout_s} s"
    wall_s = time.perf_counter() - t0
    try:
        recs = tuple(records.read(out))
    except records.RecordsError:
        recs = None
    return Process(str(tree), rc, recs, wall_s, _last_line(stderr))


def run_args(spec, trees, probe=accepts):
    """The run arguments for processes in every one of `trees`."""
    return spec.args(budget=all(probe(tree, "--budget") for tree in dict.fromkeys(map(str, trees))))


def order(names, i):
    """The order of round i: names rotated by i (A B, B A, A B ... for two). A fixed order would
    turn any effect of going first or second (caches warmed by the previous process, a slow start)
    into a bias of one side; rotating cancels it over the rounds."""
    names = list(names)
    k = i % len(names)
    return names[k:] + names[:k]


def interleave(trees, rounds, args, workdir, runner=run_harness, progress=None, extra_env=None):
    """{name: [Process of round 0, 1, ...]}: each round runs every tree once, in order(names, i),
    each in its own process (`runner(tree, out, args, extra_env)`) writing to workdir/<name>-<round>."""
    progress = progress or _stderr
    out = {name: [] for name in trees}
    for i in range(rounds):
        for name in order(trees, i):
            p = runner(trees[name], Path(workdir) / f"{name}-{i}", args, extra_env)
            out[name].append(p)
            status = "ok" if p.rc in (0, 1) and p.records else f"exit {p.rc}: {p.last_line}"
            progress(f"[round {i + 1}/{rounds}] {name}: {status} ({p.wall_s:.1f} s)")
    return out


def _stderr(line):
    print(line, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- git

def _git(tree, *args):
    try:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        return subprocess.CompletedProcess(args, 127, "", str(e))


def resolve(tree, rev):
    """The commit `rev` names in `tree`'s repository. NothingToCompare where there is none to have
    (not a checkout; an ancestor such as HEAD~1 of a first commit or of a shallow clone); GateError
    for a name that means nothing."""
    if _git(tree, "rev-parse", "--show-toplevel").returncode != 0:
        raise NothingToCompare(f"{tree} is not a git checkout, so there is no base revision to run")
    done = _git(tree, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if done.returncode == 0:
        return done.stdout.strip()
    if re.search(r"[~^]", rev) and _git(tree, "rev-parse", "--verify", "--quiet", re.split(r"[~^]", rev)[0] or "HEAD").returncode == 0:
        shallow = _git(tree, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
        hint = " (a shallow clone: fetch more history, e.g. fetch-depth: 2)" if shallow else " (no parent commit)"
        raise NothingToCompare(f"{rev} does not exist{hint}")
    raise GateError(f"unknown revision {rev!r} in {tree}")


@contextmanager
def worktree(tree, sha):
    """A temporary detached worktree of commit `sha`, removed (and pruned) on exit."""
    parent = Path(tempfile.mkdtemp(prefix="bench-gate-"))
    path = parent / "base"
    done = _git(tree, "worktree", "add", "--detach", "--quiet", str(path), sha)
    if done.returncode != 0:
        shutil.rmtree(parent, ignore_errors=True)
        raise GateError(f"git worktree add failed: {_last_line(done.stderr)}")
    try:
        yield path
    finally:
        _git(tree, "worktree", "remove", "--force", str(path))
        shutil.rmtree(parent, ignore_errors=True)
        _git(tree, "worktree", "prune")


# ---------------------------------------------------------------- outcomes

@dataclass(frozen=True)
class Outcome:
    result: compare.Result
    processes: dict = field(default_factory=dict)   # {side: [Process]}
    wall_s: float = 0.0
    notes: tuple = ()

    @property
    def flagged(self):
        return bool(self.result.regressed)


def _check_processes(processes):
    """GateError when the candidate could not run at all; NothingToCompare when the base's harness
    rejects the gate's options (an older CLI) or never produced records."""
    cand = processes["candidate"]
    if not any(p.records for p in cand):
        raise GateError(f"the candidate's harness wrote no records (exit {cand[0].rc}: {cand[0].last_line})")
    base = processes["base"]
    if not any(p.records for p in base):
        raise NothingToCompare(f"the base's harness produced no records (exit {base[0].rc}: {base[0].last_line})")


def paired_outcome(processes, thresholds, allow_mismatch=False, wall_s=0.0, notes=()):
    """Compare interleaved processes pair by pair (round i of base with round i of candidate)."""
    _check_processes(processes)
    result = compare.compare([p.records for p in processes["base"]], [p.records for p in processes["candidate"]],
                             thresholds, allow_mismatch=allow_mismatch, paired=True)
    return Outcome(result, processes, wall_s, tuple(notes))


def paired(tree, rev, spec, pairs, thresholds, workdir, allow_mismatch=False, runner=run_harness, probe=accepts,
           progress=None):
    """The paired gate: `rev`'s harness (in a temporary worktree) against `tree`'s working tree."""
    progress = progress or _stderr
    sha = resolve(tree, rev)
    if _git(tree, "cat-file", "-e", f"{sha}:{HARNESS}").returncode != 0:
        raise NothingToCompare(f"{rev} ({sha[:10]}) has no harness ({HARNESS})")
    t0 = time.perf_counter()
    with worktree(tree, sha) as base_tree:
        progress(f"gate: {rev} ({sha[:10]}) against the working tree {tree}: {pairs} pairs, {spec.describe()}")
        trees = {"base": base_tree, "candidate": Path(tree)}
        processes = interleave(trees, pairs, run_args(spec, trees.values(), probe), workdir, runner, progress,
                               spec.env())
    notes = [f"base is {rev} = {sha[:10]}"]
    for p in processes["base"]:
        commits = {(r.env or {}).get("git_commit") for r in p.records or ()} - {None}
        if commits and commits != {sha}:
            notes.append(f"warning: a base process reported commit {sorted(commits)[0][:10]}, not {sha[:10]}")
            break
    return paired_outcome(processes, thresholds, allow_mismatch, time.perf_counter() - t0, notes)


# ---------------------------------------------------------------- stored baselines

def gemm_scale(base_records):
    """scale(rec) for compare_case: a record's times expressed at the baseline machine's speed,
    t * gemm_gflops(run) / gemm_gflops(baseline), the baseline's being the median over its runs
    on that device. None when some record lacks the GEMM ceiling (times are then compared raw)."""
    refs = {}
    for r in base_records:
        refs.setdefault(r.device, []).append(r.ceilings.get("gemm_gflops"))
    if not refs or any(v is None for vs in refs.values() for v in vs):
        return None
    ref = {device: sorted(vs)[len(vs) // 2] for device, vs in refs.items()}

    def scale(rec):
        own = rec.ceilings.get("gemm_gflops")
        return own / ref[rec.device] if own and rec.device in ref else 1.0
    return scale


def identity_key(fp):
    """A readable file-name-safe key of a fingerprint's identity, e.g.
    x86_64-intel-xeon-platinum-8488c-nogpu-tensorflow-2.21.0."""
    ident = env.identity(fp or {})
    parts = [ident["machine"] or "unknown", ident["cpu_model"] or "unknown-cpu",
             "+".join(ident["gpu_names"]) or "nogpu",
             *(f"{k}-{v}" for k, v in sorted(ident["framework_versions"].items()))]
    return re.sub(r"[^a-z0-9._+]+", "-", "-".join(parts).lower().replace("(r)", "").replace("(tm)", "")).strip("-")


def _hardware(fp):
    ident = env.identity(fp or {})
    return (ident["cpu_model"], ident["machine"], ident["gpu_names"])


def find_baseline(path):
    """The baseline file to use: `path` itself, or in a folder the .jsonl whose machine (CPU model,
    architecture, GPUs) is this one. NothingToCompare when the folder has none for this machine."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise GateError(f"--baseline {path}: no such file or folder")
    here = _hardware(env.fingerprint())
    for candidate in sorted(path.glob("*.jsonl")):
        recs = records.read(candidate)
        if recs and _hardware(recs[0].env) == here:
            return candidate
    raise NothingToCompare(f"no baseline for this machine ({here[0]}) in {path}; make one with --save-baseline {path}")


def stored(tree, baseline, spec, runs, thresholds, workdir, allow_mismatch=False, runner=run_harness, probe=accepts,
           progress=None):
    """The working tree run `runs` times against a stored baseline's runs, times normalised by
    each run's GEMM ceiling (unpaired: the baseline was measured at another time)."""
    progress = progress or _stderr
    path = find_baseline(baseline)
    base = records.read(path)
    t0 = time.perf_counter()
    progress(f"gate: the working tree {tree} against {path}: {runs} runs, {spec.describe()}")
    processes = interleave({"candidate": Path(tree)}, runs, run_args(spec, [tree], probe), workdir, runner, progress,
                           spec.env())
    cand = [r for p in processes["candidate"] for r in p.records or ()]
    if not cand:
        p = processes["candidate"][0]
        raise GateError(f"the candidate's harness wrote no records (exit {p.rc}: {p.last_line})")
    scale = gemm_scale(base + cand)
    notes = [f"baseline {path} ({len({r.run_id for r in base})} runs)",
             "times normalised by each run's measured GEMM GFLOP/s" if scale else
             "warning: times NOT normalised (some records lack the GEMM ceiling)"]
    result = compare.compare(base, cand, thresholds, allow_mismatch=allow_mismatch, scale=scale)
    return Outcome(result, processes, time.perf_counter() - t0, tuple(notes))


def save_baseline(tree, path, spec, runs, workdir, runner=run_harness, probe=accepts, progress=None):
    """Run the working tree `runs` times and write every record to the baseline file (a folder gets
    <identity key>.jsonl); returns the file."""
    processes = interleave({"candidate": Path(tree)}, runs, run_args(spec, [tree], probe), workdir, runner, progress,
                           spec.env())
    recs = [r for p in processes["candidate"] for r in p.records or ()]
    if not recs:
        p = processes["candidate"][0]
        raise GateError(f"the harness wrote no records (exit {p.rc}: {p.last_line})")
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / f"{identity_key(recs[0].env)}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.unlink(missing_ok=True)
    for r in recs:
        records.append(tmp, r)
    tmp.replace(path)
    return path


# ---------------------------------------------------------------- A/A

def rate_ci(k, n, level=0.95):
    """Wilson score interval of a proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def settings(spec, pairs, thresholds):
    """What a stored rate was measured with; a rate applies to a gate run with the same settings."""
    return {"pairs": pairs, "run": spec.describe(), "threshold": thresholds.default,
            "overrides": [list(o) for o in thresholds.overrides], "rule": compare.RULE}


def experiment_entry(outcomes, spec, pairs, thresholds, method):
    """The stored summary of repeated gate runs (A/A or detection)."""
    flagged = sum(o.flagged for o in outcomes)
    per_case = {}
    for o in outcomes:
        for c in o.result.comparisons:
            per_case.setdefault(c.label, {"regressed": 0, "improved": 0, "same": 0, "n/a": 0})[c.verdict] += 1
    lo, hi = rate_ci(flagged, len(outcomes))
    return {**settings(spec, pairs, thresholds), "method": method, "runs": len(outcomes), "flagged": flagged,
            "rate": flagged / len(outcomes) if outcomes else None, "rate_ci95": [lo, hi], "per_case": per_case,
            "measured_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def load_experiments(path):
    """{identity key: {"identity": ..., "aa": entry, "detection": entry}}; {} when absent or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def store_experiment(path, fp, name, entry):
    """Set experiments[identity key][name] = entry in the JSON file at `path`."""
    path = Path(path)
    data = load_experiments(path)
    key = identity_key(fp)
    data.setdefault(key, {})["identity"] = env.identity(fp)
    data[key][name] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return key


def rate_line(path, fp, spec, pairs, thresholds):
    """The stored A/A false-positive rate for this machine, as a line to print beside a verdict."""
    entry = load_experiments(path).get(identity_key(fp), {})
    aa = entry.get("aa")
    if not aa:
        return "A/A false-positive rate: not measured on this machine (measure it: python -m bench gate --aa 20)"
    lo, hi = aa.get("rate_ci95", [math.nan, math.nan])
    line = (f"A/A false-positive rate on this machine: {aa['flagged']}/{aa['runs']} runs flagged "
            f"({aa['rate']:.0%}, 95% CI {lo:.0%}-{hi:.0%}{_resampled(aa)}), measured {aa.get('measured_utc', '?')[:10]}")
    det = entry.get("detection")
    if det:
        line += (f"; a +{det.get('slowdown', 0):.0%} slowdown was flagged in {det['flagged']}/{det['runs']} runs"
                 f"{_resampled(det, ' (', ')')}")
    now = settings(spec, pairs, thresholds)
    differ = [k for k in ("pairs", "run", "threshold", "overrides", "rule") if aa.get(k) != now[k]]
    if differ:
        line += f" (with other settings: {', '.join(differ)} differ)"
    return line


def _resampled(entry, before="; ", after=""):
    r = entry.get("resampled")
    return f"{before}{r['flagged']}/{r['runs']} resampled runs{after}" if r else ""


# ---------------------------------------------------------------- printing

def report(outcome, base_name="base", candidate_name="candidate"):
    """Lines to print for one gate run."""
    return [*compare.table(outcome.result, base_name, candidate_name), *outcome.notes, compare.summary(outcome.result)]


def first_env(outcome):
    for procs in outcome.processes.values():
        for p in procs:
            for r in p.records or ():
                return r.env
    return {}
