"""Measures the gate's error rates on this machine (test-only, run by hand): unchanged code against
itself (A/A) and a candidate whose manual step does 25% more work (tests/benchmarks/slower.py).

    python tests/benchmarks/gate_rates.py --rounds 24 [--pairs 4] [--out DIR]

One interleaved sequence of rounds, each running three processes in rotating order: the working
tree (base), the working tree again (the A/A candidate) and a copy of it whose manual step is
slower (the detection candidate). Every `pairs` consecutive rounds form one gate run of each kind,
judged by the gate's own code (bench.gate.paired_outcome); disjoint windows are independent runs,
sliding windows and random subsets of rounds add overlapping ones. The rates go to
results/baselines/aa.json for this machine."""
import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import compare, gate, records  # noqa: E402

HOOK = '''
from kernels._gate_slowdown import slower as _slower  # test-only (gate_rates.py)
STEPS = {**STEPS, "manual": _slower(STEPS["manual"])}
'''


def slower_copy(dest):
    """A copy of the working tree (tracked and untracked, not ignored, files) whose manual step is slower."""
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    shutil.copy2(Path(__file__).with_name("slower.py"), dest / "kernels" / "_gate_slowdown.py")
    with open(dest / "kernels" / "steps.py", "a", encoding="utf-8") as f:
        f.write(HOOK)
    return dest


def load(folder):
    """A Process from the records an earlier run left in `folder`."""
    return gate.Process(str(folder), 0, tuple(records.read(folder)), 0.0)


def windows(rounds, pairs, sliding):
    step = 1 if sliding else pairs
    return [list(range(j, j + pairs)) for j in range(0, rounds - pairs + 1, step)]


def judge(procs, candidate, window, thresholds):
    return gate.paired_outcome({"base": [procs["base"][i] for i in window],
                                "candidate": [procs[candidate][i] for i in window]}, thresholds)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=24)
    p.add_argument("--pairs", type=int, default=gate.DEFAULT_PAIRS)
    p.add_argument("--subsets", type=int, default=100, help="random subsets of rounds judged as extra gate runs")
    p.add_argument("--also-pairs", type=int, nargs="*", default=[6, 8], help="window sizes also judged (printed and stored)")
    p.add_argument("--out", help="keep every process's records here")
    p.add_argument("--analyse", metavar="DIR", help="judge the processes an earlier --out kept (stores nothing)")
    p.add_argument("--aa-file", default=str(REPO / gate.AA_FILE))
    a = p.parse_args()
    spec, thresholds = gate.RunSpec(), compare.load_thresholds(REPO / "pyproject.toml")
    t0 = time.perf_counter()
    if a.analyse:
        procs = {name: [load(Path(a.analyse) / f"{name}-{i}") for i in range(a.rounds)] for name in ("base", "same", "slower")}
    else:
        with tempfile.TemporaryDirectory(prefix="gate-rates-") as scratch:
            workdir = Path(a.out) if a.out else Path(scratch) / "runs"
            trees = {"base": REPO, "same": REPO, "slower": slower_copy(Path(scratch) / "slower")}
            procs = gate.interleave(trees, a.rounds, gate.run_args(spec, trees.values()), workdir, extra_env=spec.env())
    wall_s = time.perf_counter() - t0
    fp = next(r.env for p in procs["base"] for r in p.records or ())
    for kind, candidate in (("aa", "same"), ("detection", "slower")):
        outcomes = {s: [judge(procs, candidate, w, thresholds) for w in windows(a.rounds, a.pairs, s)]
                    for s in (False, True)}
        method = (f"gate_rates.py: {a.rounds} rounds of 3 processes (base, A/A candidate, slower candidate) in "
                  f"rotating order; {len(outcomes[False])} disjoint windows of {a.pairs} pairs are the runs counted; "
                  f"{a.pairs}-round sliding windows reported apart; {wall_s:.0f} s")
        entry = gate.experiment_entry(outcomes[False], spec, a.pairs, thresholds, method)
        slide = outcomes[True]
        entry["sliding"] = {"runs": len(slide), "flagged": sum(o.flagged for o in slide),
                            "per_case": gate.experiment_entry(slide, spec, a.pairs, thresholds, "")["per_case"]}
        rng = random.Random(0)
        subsets = [sorted(rng.sample(range(a.rounds), a.pairs)) for _ in range(a.subsets)]
        entry["resampled"] = {"runs": len(subsets), "flagged": sum(judge(procs, candidate, w, thresholds).flagged
                                                                   for w in subsets),
                              "note": f"random {a.pairs}-round subsets of the {a.rounds} rounds (not independent)"}
        entry["other_pairs"] = {}
        for k in a.also_pairs:
            ks = [sorted(rng.sample(range(a.rounds), k)) for _ in range(a.subsets)] if k <= a.rounds else []
            entry["other_pairs"][k] = {"disjoint_runs": a.rounds // k,
                                       "disjoint_flagged": sum(judge(procs, candidate, w, thresholds).flagged
                                                               for w in windows(a.rounds, k, False)),
                                       "subsets": len(ks),
                                       "subsets_flagged": sum(judge(procs, candidate, w, thresholds).flagged for w in ks)}
        if kind == "detection":
            entry.update(slowdown=0.25, slowed="manual step: one extra (0.75n x m) @ (m x nh) matmul")
        if not a.analyse:
            gate.store_experiment(a.aa_file, fp, kind, entry)
        print(f"{kind}: {entry['flagged']}/{entry['runs']} disjoint runs flagged; "
              f"{entry['sliding']['flagged']}/{entry['sliding']['runs']} sliding windows; "
              f"{entry['resampled']['flagged']}/{entry['resampled']['runs']} random subsets")
        for k, o in entry["other_pairs"].items():
            print(f"  with {k} pairs: {o['disjoint_flagged']}/{o['disjoint_runs']} disjoint runs; "
                  f"{o['subsets_flagged']}/{o['subsets']} random subsets")
        for label, counts in entry["sliding"]["per_case"].items():
            print(f"  {label}: {counts}")
    print(f"{a.rounds} rounds x 3 processes in {wall_s:.0f} s" + ("" if a.analyse else f"; stored in {a.aa_file}"))


if __name__ == "__main__":
    main()
