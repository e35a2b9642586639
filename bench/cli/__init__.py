"""The command line: one parser module per command group (run.py: run, list, overhead; report.py:
report, export; gate.py: compare, gate; bisect.py: bisect; history.py: history; scale.py: scale; explain.py:
explain; venvs.py: env), the shared parsing in args.py,
progress and signals in progress.py.

One exit-code contract for every command: 0 fine; 1 what the command exists to find (a failed
case, a regression); 2 bad input (one line naming it); 3 an internal error (one line saying where
the traceback was written); 130 / 143 stopped by SIGINT / SIGTERM; 141 its output's reader went
away (a closed pipe). No traceback reaches the terminal.
"""

import datetime
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence

from bench.cli import bisect, explain, gate, history, report, run, scale, venvs
from bench.cli.args import EXIT_BAD_INPUT, Parser, UsageError
from bench.text import printable

EXIT_INTERNAL = 3

GROUPS = (run, report, gate, bisect, history, scale, explain, venvs)


def build_parser() -> Parser:
    p = Parser(prog="python -m bench", description="Check, then time, forward+backward passes of the lesson's MLP.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in GROUPS:
        group.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from bench.data import DataError
    from bench.frameworks import FrameworkUnavailable
    from bench.records import RecordsError
    from bench.run import ConfigError
    from bench.venvs import VenvError

    args = build_parser().parse_args(argv)
    commands = {name: cmd for group in GROUPS for name, cmd in group.COMMANDS.items()}
    try:
        return commands[args.command](args)
    except (
        UsageError,
        ConfigError,
        DataError,
        RecordsError,
        VenvError,
        FrameworkUnavailable,
        *gate.errors(),
        *history.errors(),
        *scale.errors(),
        *explain.errors(),
        *bisect.errors(),
    ) as e:
        print(f"python -m bench {args.command}: error: {printable(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"python -m bench {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head`): nothing more to say, and no one to say it to
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:  # a bug: one line here, the traceback in a file
        where = write_traceback(args.command)
        print(
            f"python -m bench {args.command}: internal error: {type(e).__name__}: "
            f"{printable(str(e).splitlines()[0] if str(e) else '')[:300]} (traceback in {where})",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def write_traceback(command: str) -> str:
    """The current exception's traceback in a new file under the temporary folder; its path."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    fd, path = tempfile.mkstemp(prefix=f"bench-{command}-{stamp}-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"python -m bench {' '.join(sys.argv[1:])}\n\n")
        traceback.print_exc(file=f)
    return path
