"""The bisect experiment: throwaway 30-commit histories (history.py) with a +10% slowdown planted at
three places, an extra matmul at two, and none; each bisected with this checkout's harness
(python -m bench bisect GOOD BAD --repo CLONE --case numpy/manual/eager/*), one at a time; then a
slowdown behind a broken commit (skipped), one bisected in process pairs, and one bisection
repeated against the history it was added to (--db). Writes each bisection's JSON under runs/, the
sample output the docs show (sample.txt) and the results file results/validation/bisect.json.

Usage: python results/examples/bisect-cpu/measure.py [--repeats 2]"""

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CASE = "numpy/manual/eager/*"
SCENARIOS = [("slow", 4), ("slow", 15), ("slow", 27), ("matmul", 9), ("matmul", 20), ("none", 0)]


def history(folder: Path, plant: str, at: int, *extra: str) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, str(HERE / "history.py"), str(folder), plant, str(at), "--source", str(REPO), *extra],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(part.split("=") for part in out.split())


def bisect(shas: dict[str, str], clone: Path, out: Path, name: str, *extra: str, cwd: Path = REPO) -> dict:
    result = HERE / "runs" / f"{name}.json"
    result.parent.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench", "bisect", shas["good"], shas["bad"], "--repo", str(clone), "--case", CASE,
         "--out", str(out), "--json", str(result), *extra],
        cwd=cwd, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"{name}: exit {done.returncode}: {done.stderr[-500:]}")
    data = json.loads(result.read_text())
    data["measured_wall_s"] = round(wall, 1)
    data["planted"] = shas["planted"]
    result.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{name}: {data['answer']} {((data.get('first_bad') or {}).get('sha') or '')[:10]} "
          f"(planted {shas['planted'][:10]}) in {len(data['steps'])} steps, {wall:.0f} s", flush=True)  # fmt: skip
    return data


def machine() -> str:
    sys.path.insert(0, str(REPO))
    from bench import fingerprint
    from bench.machine import Machine

    return Machine.of(fingerprint.collect()).cpu_model or platform.machine()


def processes_said(data: dict) -> str:
    """What the process-pairs bisection answered, in a few words, with the steps it rests on."""
    steps = data["steps"]
    if data["answer"] == "found":
        return f"{'found' if data['right'] else 'a wrong commit named'} in {len(steps)} steps"
    ends = [s for s in steps if s["kind"] == "ends"]
    said = f"'{data['answer']}' after {len(steps)} step(s)"
    if ends and ends[-1]["cases"] and ends[-1]["cases"][0].get("ratio"):
        r = ends[-1]["cases"][0]
        said += (
            f": its ends {ends[-1]['verdict']} at {ends[-1]['pairs']} pairs (x{r['ratio']:.3f} "
            f"[{r['lo']:.3f}, {r['hi']:.3f}])"
        )
    last = steps[-1] if steps and steps[-1]["kind"] == "times" else None
    if last and last["verdict"] == "inconclusive":
        said += f", then commit {last['index']} undecided at {last['pairs']} pairs"
    return said


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bisect-exp-") as tmp:
        for plant, at in SCENARIOS:
            clone = Path(tmp) / f"{plant}-{at}"
            shas = history(clone, plant, at)
            for k in range(args.repeats):
                name = f"{plant}-{at}-{k + 1}"
                data = bisect(shas, clone, Path(tmp) / f"out-{name}", name)
                first = (data.get("first_bad") or {}).get("sha")
                rows.append(
                    {
                        "plant": plant,
                        "at": at,
                        "answer": data["answer"],
                        "right": (first == shas["planted"]) if plant != "none" else data["answer"] == "no change",
                        "steps": len(data["steps"]),
                        "measured": sum(1 for s in data["steps"] if not s["reused"]),
                        "wall_s": data["measured_wall_s"],
                        "by": data["by"],
                        "sure": data["sure"],
                    }
                )
        # a slowdown behind a commit that fails its check; one in process pairs (each commit's own harness)
        clone = Path(tmp) / "broken"
        shas = history(clone, "slow", 20, "--broken", "15")
        broken = bisect(shas, clone, Path(tmp) / "out-broken", "slow-20-broken-15")
        broken["right"] = (broken.get("first_bad") or {}).get("sha") == shas["planted"]
        clone = Path(tmp) / "processes"
        shas = history(clone, "slow", 15)
        pairs = bisect(shas, clone, Path(tmp) / "out-processes", "slow-15-processes", "--pairing", "processes")
        pairs["right"] = (pairs.get("first_bad") or {}).get("sha") == shas["planted"]
        # the history: one bisection added to a store, then the same again elsewhere, reading it back
        # (run from the clone: its harness is the range's, so each step's records are its commits' own)
        clone = Path(tmp) / "db-clone"
        shas = history(clone, "slow", 15)
        db = f"sqlite:///{tmp}/history.sqlite"
        subprocess.run([sys.executable, "-m", "bench", "history", "init", "--db", db], cwd=REPO, check=True)
        first = bisect(shas, clone, Path(tmp) / "out-db-1", "db-first", "--db", db, cwd=clone)
        again = bisect(shas, clone, Path(tmp) / "out-db-2", "db-again", "--db", db, cwd=clone)
        again["right"] = (again.get("first_bad") or {}).get("sha") == shas["planted"]
    by_kind = {}
    for row in rows:
        by_kind.setdefault(row["plant"], []).append(row)

    def spread(values):
        return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}

    figures = {
        kind: {
            "right": f"{sum(r['right'] for r in got)} of {len(got)}",
            "placements": sorted({r["at"] for r in got}),
            "steps": spread([r["steps"] for r in got]),
            "minutes": spread([round(r["wall_s"] / 60, 2) for r in got]),
            "answers": sorted({r["answer"] for r in got}),
            "by": sorted({r["by"] or "-" for r in got}),
        }
        for kind, got in by_kind.items()
    }

    def one(data):
        return {
            "answer": data["answer"],
            "right": data.get("right"),
            "steps": len(data["steps"]),
            "measured": sum(1 for s in data["steps"] if not s["reused"]),
            "skipped": [s["sha"][:10] for s in data["steps"] if s["verdict"] == "skip"],
            "minutes": round(data["measured_wall_s"] / 60, 2),
        }

    figures["broken"] = one(broken)
    figures["processes"] = one(pairs)
    figures["history"] = {"first": one(first), "again": one(again)}
    figures["bisections"] = rows
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    slow, mm, none = figures["slow"], figures["matmul"], figures["none"]
    summary = (
        f"A +10% slowdown (no counter changed) at commits {', '.join(map(str, slow['placements']))} of 30: found "
        f"{slow['right']}, in {slow['steps']['min']}-{slow['steps']['max']} steps (the ends and the confirmation "
        f"included) and {slow['minutes']['min']:.1f}-{slow['minutes']['max']:.1f} min (median "
        f"{slow['minutes']['median']:.1f}). An extra matmul (ops lin 2 -> 3) at commits "
        f"{', '.join(map(str, mm['placements']))}: found {mm['right']} by counters, in {mm['steps']['min']}-"
        f"{mm['steps']['max']} steps and {mm['minutes']['min']:.1f}-{mm['minutes']['max']:.1f} min. No change: "
        f"'no change' {none['right']}, in {none['steps']['max']} step. Behind a commit that fails its check: "
        f"{'found' if broken['right'] else 'NOT found'}, the broken commit skipped, in {len(broken['steps'])} steps. "
        f"In process pairs (each commit's own harness, the gate's 4 pairs): {processes_said(pairs)}, "
        f"{pairs['measured_wall_s'] / 60:.1f} min. Added to a history (--db), the same bisection again: "
        f"{'found' if again['right'] else 'NOT found'} in {again['measured_wall_s']:.0f} s, "
        f"{figures['history']['again']['measured']} step(s) measured."
    )
    entry = {
        "name": "bisect",
        "title": "Bisecting a 30-commit history",
        "what": "Throwaway clones of this repository with 30 commits on top, each changing a comment under kernels/ "
        "(results/examples/bisect-cpu/history.py), one of them planting a change: NumPy's ReLU computing its "
        "maximum 19 times more (the manual step about 10% slower at n=5000 on one thread, no counter changed), or "
        "the hand-written step computing its first layer twice (an extra matmul: a counter change), or nothing. "
        f"Each bisected {args.repeats} times for NumPy's manual step, one process a step (only kernels/ changed); "
        "then a slowdown at commit 20 behind a commit 15 that fails its check (a skip), the slowdown at 15 "
        "bisected in process pairs (--pairing processes: each commit's own harness, rotating rounds of "
        "processes), and one bisected with --db twice, the second reading each step back from the history.",
        "command": "python results/examples/bisect-cpu/measure.py --repeats "
        f"{args.repeats} (python -m bench bisect GOOD BAD --repo CLONE --case '{CASE}' --json ...)",
        "machine": f"{machine()}, the 2-core shared VM this project's CI runs on",
        "date": datetime.date.today().isoformat(),
        "commit": head.stdout.strip(),
        "figures": figures,
        "summary": summary,
    }
    (REPO / "results" / "validation" / "bisect.json").write_text(json.dumps(entry, indent=1) + "\n")
    sample = json.loads((HERE / "runs" / "slow-15-1.json").read_text())
    (HERE / "sample.txt").write_text(
        f"$ python -m bench bisect GOOD BAD --case '{CASE}'   # {entry['date']}, {entry['machine']}\n"
        + "\n".join(sample["lines"])
        + "\n"
    )
    print(summary)


if __name__ == "__main__":
    main()
