"""The env command: the cached environments of `run --env` (bench/venvs.py), listed and pruned."""

import argparse
import datetime

from bench.cli.args import Parser, UsageError


def add_parsers(sub: "argparse._SubParsersAction[Parser]") -> None:
    e = sub.add_parser("env", help="the environments `run --env` built: list them, prune the cache")
    actions = e.add_subparsers(dest="env_command", required=True, parser_class=Parser)
    actions.add_parser("list", help="each cached environment: its set, its frameworks' and NumPy's versions, its size")
    p = actions.add_parser(
        "prune", help="remove the least recently used environments down to a size (and every interrupted build)"
    )
    p.add_argument(
        "--max-gb",
        type=float,
        metavar="GB",
        help="keep at most this much (default: the cache's limit, BENCH_ENV_CACHE_LIMIT_GB or 20)",
    )
    p.add_argument("--all", action="store_true", help="remove every environment")


def _gb(n: int) -> str:
    return f"{n / 2**30:.2f} GB"


def cmd_env(args: argparse.Namespace) -> int:
    from bench import frameworks, venvs

    root = venvs.cache_dir()
    if root.exists() and not root.is_dir():
        raise UsageError(f"the environment cache {root} ({venvs.CACHE_VARIABLE}) is a file, not a folder")
    if args.env_command == "list":
        listed = venvs.entries(root)
        if not listed:
            print(f"no environments in {root}")
            return 0
        shown = [frameworks.spec(n).package for n in frameworks.FRAMEWORKS]
        for e in listed:
            pinned = {d: v for d, v in venvs.versions(e.pins, shown).items() if v}
            used = datetime.datetime.fromtimestamp(e.last_used).strftime("%Y-%m-%d %H:%M")
            print(
                f"{e.key}  {e.name}: {', '.join(f'{d} {v}' for d, v in pinned.items())}; "
                f"{len(e.pins)} packages, {_gb(e.bytes)}, last used {used}"
            )
        total, own = venvs.disk_usage([e.path for e in listed])
        print(
            f"{len(listed)} environment(s) in {root}: {_gb(total)} of files (each counted once), {_gb(own)} of "
            f"them held by these environments alone (the rest are links into uv's cache); limit "
            f"{_gb(venvs.limit_bytes())}"
        )
        return 0
    if args.max_gb is not None and not args.max_gb >= 0:
        raise UsageError(f"--max-gb must be zero or more, got {args.max_gb}")
    limit = 0 if args.all else int(args.max_gb * 2**30) if args.max_gb is not None else venvs.limit_bytes()
    removed = venvs.prune(limit, root=root)
    for e in removed:
        print(f"removed {e.key}  {e.name} ({_gb(e.bytes)})")
    print(f"{len(removed)} environment(s) removed; {len(venvs.entries(root))} left in {root}")
    return 0


COMMANDS = {"env": cmd_env}
