"""The report and export commands: records of one or more runs -> a report, or another tool's format."""
import sys
from pathlib import Path

from bench.records import RecordsError


def add_parsers(sub):
    rep = sub.add_parser("report", help="rebuild report.md, report.html, plots/ and tables/ from the records of one or more runs")
    rep.add_argument("results", nargs="+", help="run folders or records .jsonl files (merged)")
    rep.add_argument("--out", help="output folder (default: the first run folder)")
    e = sub.add_parser("export", help="write a run's records in another tool's format")
    e.add_argument("run", help="a run folder or records .jsonl file")
    e.add_argument("--format", required=True, choices=("pytest-benchmark",))
    e.add_argument("--out", help="output file (default: standard output)")


def cmd_report(args):
    from bench import records, report
    loaded = [r for path in args.results for r in records.read(path)]
    if not loaded:
        raise RecordsError(f"{', '.join(args.results)}: no records")
    out = Path(args.out) if args.out else records.records_file(args.results[0]).parent
    for path in report.write(loaded, out):
        print(path)
    return 0


def cmd_export(args):
    from bench import export, records
    recs = records.read(args.run)
    if not recs:
        raise RecordsError(f"{args.run}: no records")
    doc, left_out = export.pytest_benchmark(recs)
    text = export.dumps(doc)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"{args.out}: {len(doc['benchmarks'])} benchmarks", file=sys.stderr)
    else:
        sys.stdout.write(text)
    for label in left_out:
        print(f"not exported (not timed): {label}", file=sys.stderr)
    return 0


COMMANDS = {"report": cmd_report, "export": cmd_export}
