"""The history in github-action-benchmark's format: its `data.js` (window.BENCHMARK_DATA), the file
the action keeps on the gh-pages branch and its dashboard page reads. One entry list per machine,
one entry per commit (tool "customSmallerIsBetter", unit ms, the CI half-width as `range`)."""
import datetime
import json
import subprocess


def _message(repo, sha):
    try:
        done = subprocess.run(["git", "-C", str(repo), "show", "-s", "--format=%s", "--end-of-options", sha],
                              capture_output=True, text=True, timeout=30)
        return done.stdout.strip() if done.returncode == 0 else ""
    except (OSError, ValueError, subprocess.SubprocessError):
        return ""


def data_js(all_series, repo, repo_url=None):
    """The text of a data.js holding every series (series.Series), grouped by machine."""
    entries = {}
    for s in all_series:
        suite = entries.setdefault(f"backprop-bench on {s.machine}", {})
        for p in s.points:
            entry = suite.setdefault(p.commit, {
                "commit": {"id": p.commit, "message": _message(repo, p.commit),
                           "timestamp": datetime.datetime.fromtimestamp(p.time or 0, datetime.timezone.utc).isoformat(),
                           **({"url": f"{repo_url}/commit/{p.commit}"} if repo_url else {})},
                "date": int((p.time or 0) * 1000), "tool": "customSmallerIsBetter", "benches": []})
            half = (p.hi_s - p.lo_s) / 2 * 1e3 if p.hi_s == p.hi_s and p.lo_s == p.lo_s else None
            entry["benches"].append({"name": s.case, "value": round(p.median_s * 1e3, 6), "unit": "ms",
                                     **({"range": f"± {half:.4g}"} if half is not None else {}),
                                     "extra": f"{len(p.runs)} run(s): {', '.join(p.runs)}"})
    data = {"lastUpdate": int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000),
            **({"repoUrl": repo_url} if repo_url else {}),
            "entries": {suite: sorted(commits.values(), key=lambda e: e["date"]) for suite, commits in entries.items()}}
    return "window.BENCHMARK_DATA = " + json.dumps(data, indent=2) + "\n"
