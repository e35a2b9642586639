"""The history in github-action-benchmark's format: its `data.js` (window.BENCHMARK_DATA), the file
the action keeps on the gh-pages branch and its dashboard page reads. One entry list per machine,
one entry per commit (tool "customSmallerIsBetter", unit ms, the CI half-width as `range`)."""

import datetime
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import git

if TYPE_CHECKING:
    from bench.history.series import Series


def messages(repo: Path | str, shas: Iterable[str]) -> dict[str, str]:
    """{sha: subject line} of every commit in `shas` that `repo` knows, from one git process (one
    commit's absence, a shallow clone, leaves it out rather than failing the rest)."""
    shas = sorted({s for s in shas if s and s.isalnum()})
    if not shas:
        return {}
    done = git.git(
        repo, "show", "-s", "--no-walk=unsorted", "--format=%H%x00%s", "--ignore-missing", "--end-of-options", *shas
    )
    if done.returncode != 0:  # an unknown sha fails the lot on older gits: ask one by one then
        return {} if len(shas) == 1 else {k: v for s in shas for k, v in messages(repo, [s]).items()}
    return dict(line.split("\0", 1) for line in done.stdout.splitlines() if "\0" in line)


def data_js(all_series: "Sequence[Series]", repo: Path | str, repo_url: str | None = None) -> str:
    """The text of a data.js holding every series (series.Series), grouped by machine."""
    subject = messages(repo, [p.commit for s in all_series for p in s.points])
    entries: dict[str, dict[str, dict[str, Any]]] = {}
    for s in all_series:
        suite = entries.setdefault(f"backprop-bench on {s.machine}", {})
        for p in s.points:
            entry = suite.setdefault(
                p.commit,
                {
                    "commit": {
                        "id": p.commit,
                        "message": subject.get(p.commit, ""),
                        "timestamp": datetime.datetime.fromtimestamp(p.time or 0, datetime.timezone.utc).isoformat(),
                        **({"url": f"{repo_url}/commit/{p.commit}"} if repo_url else {}),
                    },
                    "date": int((p.time or 0) * 1000),
                    "tool": "customSmallerIsBetter",
                    "benches": [],
                },
            )
            half = (p.hi_s - p.lo_s) / 2 * 1e3 if p.hi_s == p.hi_s and p.lo_s == p.lo_s else None
            entry["benches"].append(
                {
                    "name": s.case,
                    "value": round(p.median_s * 1e3, 6),
                    "unit": "ms",
                    **({"range": f"± {half:.4g}"} if half is not None else {}),
                    "extra": f"{len(p.runs)} run(s): {', '.join(p.runs)}",
                }
            )
    data = {
        "lastUpdate": int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000),
        **({"repoUrl": repo_url} if repo_url else {}),
        "entries": {suite: sorted(commits.values(), key=lambda e: e["date"]) for suite, commits in entries.items()},
    }
    return "window.BENCHMARK_DATA = " + json.dumps(data, indent=2) + "\n"
