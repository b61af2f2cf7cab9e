"""The `cachebench` command: parse, then dispatch to one function per subcommand.

The work lives in library functions (reports.figures and the like) that the tests call
directly; a subcommand only turns arguments into a call and the result into output.
"""

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from reports.figures import check, format_figures
from reports.history import FILE_PATTERN, FINAL_READS_FILE, HistoryError


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cachebench", description="What an HTTP cache buys, and what it costs."
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    check_parser = commands.add_parser(
        "check",
        help="print the figures of one run: throughput, latency, hit rate, stale reads",
        description=f"Check one run's history ({FILE_PATTERN}, and {FINAL_READS_FILE} if "
        "present) and print its figures. Exit status 2 if it cannot be read.",
    )
    check_parser.add_argument("history_dir", type=Path, help="the run's directory")
    check_parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    check_parser.add_argument(
        "--warmup",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="leave out of the figures the operations invoked in the history's first SECONDS "
        "(their writes still judge the reads after them; default: 0)",
    )
    check_parser.set_defaults(command=cmd_check)
    return parser


def cmd_check(args: argparse.Namespace) -> int:
    try:
        result = check(args.history_dir, warmup_s=args.warmup)
    except (HistoryError, OSError) as exc:
        print(f"cachebench check: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_figures(result))
    return 0


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise argparse.ArgumentTypeError(f"not a number of seconds >= 0: {text!r}")
    return seconds


if __name__ == "__main__":
    sys.exit(main())
