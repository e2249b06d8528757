"""The ``lambdacron`` command. Thin: parse arguments, call the library, render the result.

This is one of the two places (with the Lambda handler) that reads the clock.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import islice

from . import __version__
from .errors import LambdacronError, UsageError
from .schedule import get_zone, parse, parse_instant

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _cmd_next(args: argparse.Namespace) -> int:
    zone = get_zone(args.tz)
    schedule = parse(args.expression, args.tz)
    after = datetime.now(UTC) if args.after is None else parse_instant(args.after, zone, "--after")
    for moment in islice(schedule.iter_after(after), args.count):
        print(moment.astimezone(zone).isoformat())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lambdacron", description="Dynamic cron-like jobs stored as JSON files.")
    parser.add_argument("--version", action="version", version=f"lambdacron {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    nxt = commands.add_parser("next", help="print the next fire times of a schedule expression")
    nxt.add_argument("expression", help="e.g. '30 18 * * *', 'rate(5 minutes)', 'at(...)'")
    nxt.add_argument("--count", type=_positive, default=5, help="how many (default 5)")
    nxt.add_argument("--after", help="ISO 8601 start, exclusive (default: now)")
    nxt.add_argument("--tz", default="UTC", help="IANA time zone of the schedule and output")
    nxt.set_defaults(func=_cmd_next)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        result: int = args.func(args)
        return result
    except LambdacronError as exc:
        # A user's mistake gets one clear line, never a traceback.
        print(f"lambdacron: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
