"""The report and export commands: records of one or more runs -> a report, or another tool's format."""

import argparse
import sys
from pathlib import Path

from bench.cli.args import Parser
from bench.text import printable


def add_parsers(sub: "argparse._SubParsersAction[Parser]") -> None:
    rep = sub.add_parser(
        "report", help="rebuild report.md, report.html, plots/ and tables/ from the records of one or more runs"
    )
    rep.add_argument("results", nargs="+", help="run folders or records .jsonl files (merged)")
    rep.add_argument("--out", help="output folder (default: the first run folder)")
    rep.add_argument(
        "--table", action="store_true", help="print the comparison tables as a run prints them; write nothing"
    )
    e = sub.add_parser("export", help="write a run's records in another tool's format")
    e.add_argument("run", help="a run folder or records .jsonl file")
    e.add_argument("--format", required=True, choices=("pytest-benchmark",))
    e.add_argument("--out", help="output file (default: standard output)")


def warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def cmd_report(args: argparse.Namespace) -> int:
    from bench import noise, records, report

    loaded = records.read_usable(args.results, warn)
    if args.table:
        for line in report.text_tables(report.frame(loaded, noise.repository())):
            print(printable(line))
        return 0
    out = Path(args.out) if args.out else records.records_file(args.results[0]).parent
    for path in report.write(loaded, out, noise.repository()):
        print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bench import export, records

    recs = records.read_usable([args.run], warn)
    doc, left_out = export.pytest_benchmark(recs)
    text = export.dumps(doc)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"{args.out}: {len(doc['benchmarks'])} benchmarks", file=sys.stderr)
    else:
        sys.stdout.write(text)
    for label in left_out:
        print(f"not exported (not timed): {printable(label)}", file=sys.stderr)
    return 0


COMMANDS = {"report": cmd_report, "export": cmd_export}
