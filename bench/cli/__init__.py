"""The command line: one parser module per command group (run.py: run, list, overhead; report.py:
report, export; gate.py: compare, gate), the shared parsing in args.py, progress and Ctrl-C in
progress.py. Errors in what the user asked for (names, sizes, files) print one line and exit 2;
nothing here prints a traceback for them."""
import sys

from bench.cli import gate, report, run
from bench.cli.args import EXIT_BAD_INPUT, Parser, UsageError

GROUPS = (run, report, gate)


def build_parser():
    p = Parser(prog="python -m bench", description="Check, then time, forward+backward passes of the lesson's MLP.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in GROUPS:
        group.add_parsers(sub)
    return p


def main(argv=None):
    from bench.data import DataError
    from bench.frameworks import FrameworkUnavailable
    from bench.records import RecordsError
    from bench.run import ConfigError
    args = build_parser().parse_args(argv)
    commands = {name: cmd for group in GROUPS for name, cmd in group.COMMANDS.items()}
    try:
        return commands[args.command](args)
    except (UsageError, ConfigError, DataError, RecordsError, FrameworkUnavailable, *gate.errors()) as e:
        print(f"python -m bench {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
