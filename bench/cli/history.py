"""The history commands: add runs to the store, show the series and their change points, check the
last commits for a slowdown (the CI's second gate, for creep; its summary and JSON for CI as
compare's and gate's), write the dashboard, export it, and simulate the detector on this machine's
noise. Exit codes as every command's: 1 from `check` when a slowdown is found."""

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench import REPO, defaults
from bench.cli.args import Outputs, Parser, UsageError, output_flags
from bench.records import Record
from bench.text import printable

if TYPE_CHECKING:
    from bench.history.store import HistoryError

EXIT_SLOWDOWN = 1


def add_parsers(sub: "argparse._SubParsersAction[Parser]") -> None:
    h = sub.add_parser(
        "history",
        help="the results history per commit: add runs, show trends and change points, "
        "check for creep, write a dashboard",
    )
    hsub = h.add_subparsers(dest="history_command", required=True, parser_class=Parser)

    def db(p):
        p.add_argument(
            "--db",
            metavar="URL",
            help="the store: sqlite:///FILE or postgresql://... (default: sqlite:///results/history.sqlite)",
        )

    def series_flags(p):
        p.add_argument(
            "--case",
            metavar="PATTERN",
            help="only cases matching this fnmatch pattern, e.g. 'tensorflow/manual/*' or '*n=50000*'",
        )
        p.add_argument(
            "--normalise",
            action="store_true",
            help="one series per case across machines, each run's times scaled by its measured GEMM ceiling",
        )
        p.add_argument("--include-dirty", action="store_true", help="also runs of trees with uncommitted changes")
        p.add_argument("--repo", help="the git checkout the commits are in (default: this one)")

    i = hsub.add_parser("init", help="create the store (every other command needs one that exists)")
    db(i)
    a = hsub.add_parser("add", help="add run folders or records files to the store")
    a.add_argument("runs", nargs="+", metavar="RUN")
    db(a)
    a.add_argument("--repo", help="the git checkout the runs' commits are in (default: this one)")
    a.add_argument(
        "--paired-base",
        metavar="DIR",
        help="the base side of the same one-process gate as RUN (gate --out "
        "DIR: DIR/base beside DIR/candidate), its steps those of RUN's "
        "parent commit: each case's ratio to them, paired by round, is "
        "stored with it, and the change points run on those ratios",
    )
    s = hsub.add_parser("show", help="the latest value, trend and change points of each series")
    db(s)
    series_flags(s)
    s.add_argument("--since", metavar="REV", help="only commits from REV on (by commit time)")
    c = hsub.add_parser(
        "check",
        help="exit 1 when a change point among the last N commits is a slowdown over the "
        "threshold (outliers and unconfirmed newest commits are said, not failed)",
    )
    db(c)
    series_flags(c)
    c.add_argument("--last", type=int, default=20, help="commits of each series to look at (default: 20)")
    c.add_argument(
        "--threshold", help=f"a slowdown over this fails (default: {defaults.HISTORY_THRESHOLD.replace('%', '%%')})"
    )
    output_flags(c)
    d = hsub.add_parser("dashboard", help="write the history as a static site (index.html) that opens from disk")
    db(d)
    series_flags(d)
    d.add_argument("--out", required=True, help="output folder")
    e = hsub.add_parser("export", help="write the history in another tool's format")
    db(e)
    series_flags(e)
    e.add_argument("--format", required=True, choices=("github-action-benchmark",))
    e.add_argument("--out", help="output file (default: standard output)")
    e.add_argument("--repo-url", help="the repository's web address, for commit links (e.g. https://github.com/o/r)")
    m = hsub.add_parser("simulate", help="the change-point detector on synthetic histories with this machine's noise")
    m.add_argument("runs", nargs="+", metavar="RUN", help="records of repeated runs of unchanged code (the noise)")
    m.add_argument("--commits", type=int, default=200)
    m.add_argument("--cases", type=int, default=12)
    m.add_argument("--series", type=int, default=20, help="synthetic histories per case and scenario")


def _store(args, create=False):
    from bench.history.store import Store

    return Store(args.db, create=create)


def cmd_init(args: argparse.Namespace) -> int:
    store = _store(args, create=True)
    runs, results = store.counts()
    print(
        f"{store.shown}: a history of {runs} run(s), {results} result(s)" if runs else f"{store.shown}: ready (empty)"
    )
    return 0


def _repo(args):
    return Path(args.repo).resolve() if getattr(args, "repo", None) else REPO


def _series(args, store, since=None, required=True):
    from bench.history import series

    since_time = None
    if since:
        from bench import git

        try:
            since_time = git.commit_time(_repo(args), git.resolve(_repo(args), since))
        except git.NoRevision as e:
            raise UsageError(f"--since {since}: {e}") from None
    found = series.build(store.points(args.case, args.include_dirty), normalise=args.normalise, since_time=since_time)
    if not found and required:
        dirty = not args.include_dirty and store.points(args.case, include_dirty=True)
        raise UsageError(
            f"{store.shown}: no history"
            + (f" for cases matching {args.case!r}" if args.case else "")
            + (" but of trees with uncommitted changes (--include-dirty shows those)" if dirty else "")
        )
    return found


def cmd_add(args: argparse.Namespace) -> int:
    from bench import records
    from bench.cli.report import warn
    from bench.history.commits import commit_of

    store = _store(args)
    plan = []
    for path in args.runs:  # every run is checked before anything is written
        recs = records.read_usable([path], warn)
        by_run: dict[str, list[Record]] = {}
        for r in recs:
            by_run.setdefault(r.run_id, []).append(r)
        for run_id, rs in by_run.items():
            plan.append((path, rs, commit_of(rs, _repo(args), source=f"{path} (run {run_id})")))
    against = _against_parent(args, plan) if args.paired_base else None
    for path, rs, commit in plan:
        added = store.add(rs, commit, source=records.records_file(path).resolve(), against_parent=against)
        print(
            f"{printable(path)}: run {printable(rs[0].run_id)} at {commit['sha'][:10]}: "
            f"{added} result(s) added, {len(rs) - added} already there"
        )
    return 0


def _against_parent(args, plan):
    """{case: (parent sha, ratio, lo, hi)} of the one run in `plan` against --paired-base: the
    gate's base side, timed in the same rounds of the same process, whose steps are the run's parent
    commit's. Anything else (another run, another commit, several runs) is refused in one line."""
    from bench import records
    from bench.cli.report import warn
    from bench.compare import PAIRED_BY_ROUND, ROUNDS, How, compare_case
    from bench.gate.errors import GateError
    from bench.gate.one_process import read_side

    if len(plan) != 1:
        raise UsageError(f"--paired-base pairs one run with its base side; {len(plan)} runs given")
    path, rs, commit = plan[0]
    try:
        side = read_side(args.paired_base)
    except GateError as e:
        raise UsageError(f"--paired-base: {e}") from None
    if side["side"] != "base" or side.get("dirty"):
        raise UsageError(
            f"--paired-base {printable(args.paired_base)}: the {side['side']} side"
            f"{' of a tree with uncommitted changes' if side.get('dirty') else ''}, not a committed base"
        )
    if side["kernels"] != commit.get("parent"):
        raise UsageError(
            f"--paired-base {printable(args.paired_base)}: its steps are commit {side['kernels'][:10]}, not "
            f"the parent of {commit['sha'][:10]} ({(commit.get('parent') or 'none')[:10]})"
        )
    base = {r.case: r for r in records.read_usable([args.paired_base], warn)}
    if not base or any(r.run_id != rs[0].run_id for r in base.values()):
        raise UsageError(
            f"--paired-base {printable(args.paired_base)}: not the same run as {printable(path)} "
            "(its records' run id differs)"
        )
    out = {}
    for rec in rs:
        if rec.case in base:
            c = compare_case([base[rec.case]], [rec], How(ROUNDS))
            if (
                c.ratio and c.lo and c.hi and c.method == PAIRED_BY_ROUND
            ):  # the one comparison the history trusts over its own medians
                out[rec.case] = (side["kernels"], c.ratio, c.lo, c.hi)
    return out


def _change_line(s, ch):
    from bench.history.dashboard import change_text

    return change_text(s, ch)[0]


def _excursion_line(s, e):
    from bench.history.dashboard import excursion_text

    return excursion_text(s, e)[0]


def cmd_show(args: argparse.Namespace) -> int:
    from bench.history import series
    from bench.history.dashboard import work_source

    store = _store(args)
    for s in _series(args, store, args.since):
        trend, before = s.trend()
        print(
            printable(
                f"{s.case} [{s.machine}]: {len(s.points)} commit{'s' if len(s.points) != 1 else ''}, latest "
                f"{s.latest.commit[:10]} {s.latest.median_s * 1e3:.4g} ms"
                + (
                    f", {trend * 100:+.1f}% against the median of the {before} before it"
                    if math.isfinite(trend)
                    else ""
                )
                + (f", {s.latest.instructions:,.0f} instructions a call" if s.latest.instructions else "")
                + (f"; change points on {series.BASES[s.basis]} (the quieter)" if s.basis != "median" else "")
            )
        )
        for ch in s.changes:
            print(printable(f"  change: {_change_line(s, ch)}"))
        for e in s.excursions:
            print(printable(f"  {_excursion_line(s, e)}"))
        for w in s.work_changes:
            print(printable(f"  work changed at {w.commit[:10]} ({work_source(w)}): {'; '.join(w.what)}"))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bench.compare import CompareError, parse_threshold
    from bench.history import dashboard, series

    outputs = Outputs.of(args)
    try:
        threshold = parse_threshold(args.threshold or defaults.HISTORY_THRESHOLD)
    except CompareError as e:
        raise UsageError(f"--threshold: {e}") from None
    if args.last < 1:
        raise UsageError("--last must be at least 1")
    store = _store(args)
    found = _series(args, store)  # none: exit 2 (a store that holds nothing must not pass silently)
    policy, instructions = _counter_policy(args)
    check = series.check(found, args.last, threshold, policy, instructions)
    for line in dashboard.check_lines(check):
        print(line)
    return outputs.write(
        "history",
        lambda: dashboard.check_markdown(check, store.shown),
        lambda: dashboard.check_json(check, store.shown),
        EXIT_SLOWDOWN if check.failed else 0,
    )


def _counter_policy(args):
    """(case label -> the gate's counter policy, the instructions threshold) in this tree's
    pyproject.toml. Only "fail" fails a history check: "more-work" weighs a work change against a
    paired time verdict, which the gate has and a history's separate runs do not; there it is
    reported, and the times' change points judge."""
    from bench.compare import CompareError
    from bench.gate.settings import load_thresholds

    try:
        thresholds = load_thresholds(Path(_repo(args)) / "pyproject.toml")
    except CompareError as e:
        raise UsageError(str(e)) from None
    return lambda label: thresholds.counters_for(label.split(" ")[0]), thresholds.instructions


def cmd_dashboard(args: argparse.Namespace) -> int:
    import time

    from bench.history import dashboard

    t0 = time.perf_counter()
    store = _store(args)
    path = dashboard.write(_series(args, store), args.out, store.shown)
    print(f"{path} ({time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bench.history import export

    store = _store(args)
    text = export.data_js(_series(args, store), _repo(args), args.repo_url)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
        print(args.out, file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from bench import records
    from bench.cli.report import warn
    from bench.history import simulate

    noise = simulate.residuals(records.read_usable(args.runs, warn))
    if not noise:
        raise UsageError("no case has 4 or more repeated runs in the records given: nothing to take the noise from")
    for case, r in noise.items():
        print(printable(f"noise: {case}: {len(r)} repeated medians, sd of log {r.std():.3f}"))
    for o in simulate.run(noise, args.commits, args.cases, args.series):
        per_200 = o.false_alarms / o.series * 200 / args.commits
        line = (
            f"{o.scenario}: {o.series} series of {args.commits} commits: {o.false_alarms} false alarm(s) "
            f"({per_200:.2f} per case per 200 commits)"
        )
        if o.scenario == "outlier":
            line += f"; the slow run set apart as an outlier in {o.detected} ({o.detected / o.series:.0%})"
        elif o.scenario != "none":
            exact = sum(1 for d in o.offsets if d == 0)
            near = sum(1 for d in o.offsets if abs(d) <= 1)
            line += (
                f"; detected {o.detected} ({o.detected / o.series:.0%}), at the first commit {exact}, "
                f"within one commit {near}"
            )
        print(line + f"; {o.set_apart} other commit(s) set apart (outliers, unconfirmed)")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    return {
        "init": cmd_init,
        "add": cmd_add,
        "show": cmd_show,
        "check": cmd_check,
        "dashboard": cmd_dashboard,
        "export": cmd_export,
        "simulate": cmd_simulate,
    }[args.history_command](args)


COMMANDS = {"history": cmd_history}


def errors() -> "tuple[type[HistoryError]]":
    from bench.history.store import HistoryError

    return (HistoryError,)
