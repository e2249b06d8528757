"""The ``lambdacron`` command. Thin: parse arguments, call the library, render the result.

This is one of the two places (with the Lambda handler) that reads the clock.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from . import __version__
from .actions import default_registry
from .api import add, cancel, check
from .clock import utcnow
from .config import MAX_INTERVAL_MINUTES, MAX_SHARDS, Settings, parse_count
from .engine.delivery import Delivery
from .engine.inventory import STATUSES, inventory
from .engine.report import JobEvent, Outcome
from .engine.runner import (
    MAX_LOOKAHEAD_SECONDS,
    STOP_SIGNALS,
    DryRun,
    StopRequests,
    default_lookahead,
    dry_run,
    serve,
    stoppable,
    tick_shards,
)
from .engine.tick import Engine
from .engine.timer import TimerQueue
from .errors import (
    JobError,
    JobNotFoundError,
    JobTooLargeError,
    LambdacronError,
    ScheduleError,
    UsageError,
)
from .job import Job, Status
from .jobfile import decode, describe_problems, encode, load, warnings_of
from .logs import json_for_terminal, printable, render_event, short_duration, stamp
from .schedule import get_zone, parse, parse_instant, validate
from .store.base import Store
from .times import parse_tick_time

#: 3: the pass could not list the store (missing, no permission, no such bucket).
EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_STORE = 0, 1, 2, 3
_print_lock = threading.Lock()

HELLO_JOB = {
    "when": "* * * * *",
    "max_number_executions": 0,
    "run": {"type": "command", "details": {"command": ["echo", "Hello from lambdacron"]}},
}


# Every line for a person goes through ``printable``: keys, field names, values quoted in
# messages and file names come from jobs, and must not act on the terminal that shows them.
def _err(line: str) -> None:
    # One line, whatever it quotes: a field name or value of a job file may hold any text.
    with _print_lock:
        print(printable(line), file=sys.stderr, flush=True)


def _out(line: str) -> None:
    with _print_lock:
        print(printable(line), flush=True)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _count(low: int = 1, high: int | None = None) -> Callable[[str], int]:
    """A flag's whole number in ``low..high``, read as every count and setting is read
    (``parse_count``: ASCII digits only), so argparse names the flag in the message."""

    def count(text: str) -> int:
        try:
            return parse_count("", text, low=low, high=high)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(": ")) from None

    return count


_positive = _count()


def _shards(text: str) -> int:
    value = _positive(text)
    if value > MAX_SHARDS:  # a process each, at once
        raise argparse.ArgumentTypeError(f"{value} must be at most {MAX_SHARDS}")
    return value


_minutes = _count(high=MAX_INTERVAL_MINUTES)
_lookahead = _count(low=0, high=MAX_LOOKAHEAD_SECONDS)
#: ``next --count``: more fire times than any schedule has within the years a job can use.
MAX_NEXT_COUNT = 1_000_000


_STATUS_NAMES = ", ".join(repr(s) if " " in s else s for s in STATUSES)


def _status(text: str) -> str:
    if text not in STATUSES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a status; use one of {_STATUS_NAMES}")
    return text


def _quietly(write: Callable[[str], None]) -> Callable[[str], None]:
    """``write``, but a closed terminal (SIGHUP, a broken pipe) does not stop the runner."""

    def quiet(line: str) -> None:
        with contextlib.suppress(OSError):
            write(line)

    return quiet


def _settings() -> Settings:
    return Settings.from_env()


def _store(args: argparse.Namespace, *, create: bool = False) -> Store:
    return _settings().open_store(args.store, create=create)


def _instant(text: str | None, what: str) -> datetime:
    return utcnow() if text is None else parse_tick_time(text, what)


# --------------------------------------------------------------------------- logging


def _log_event(event: JobEvent) -> None:
    line = render_event(event)
    if line is not None:
        _err(f"{stamp(utcnow())} {line}")


def _engine(
    args: argparse.Namespace,
    store: Store,
    shard: tuple[int, int] | None = None,
    log: Callable[[JobEvent], None] = _log_event,
    delivery: Delivery | None = None,
) -> Engine:
    settings = _settings()
    return Engine(
        store,
        default_registry(settings.allowed_types),
        clock=utcnow,
        workers=args.workers or settings.workers,
        log=log,
        shard=shard,
        delivery=delivery,
        policies=settings.policies,
    )


def _shard_engine(store_name: str | None, workers: int, shard: tuple[int, int]) -> Engine:
    """The engine of one shard, made in a worker process of ``tick --shards``."""
    args = argparse.Namespace(store=store_name, workers=workers)
    return _engine(args, _store(args), shard)


_T = TypeVar("_T")


def _say_stopping(asked: int, names: list[str]) -> None:
    if asked == 1:
        _err(
            f"{stamp(utcnow())} {names[0]}: stopping after running jobs end; "
            "no new job starts (again to stop the running jobs now)"
        )
    else:
        _err(f"{stamp(utcnow())} {names[1]} again: stopping the running jobs")


def _stoppable(engine: Engine, work: Callable[[], _T]) -> tuple[_T, int | None]:
    """``work()`` (a tick, a run by hand) stopped by signals as ``serve`` is."""
    return stoppable(engine.stop_starting, engine.abort_running, work, _say_stopping)


# --------------------------------------------------------------------------- commands


def _cmd_next(args: argparse.Namespace) -> int:
    try:
        zone = get_zone(args.tz)
    except ScheduleError as exc:  # the flag, not a job file's field, is at fault
        raise UsageError(f"--tz: {str(exc).removeprefix('timezone: ')}") from None
    schedule = parse(args.expression, args.tz)
    after = utcnow() if args.after is None else parse_instant(args.after, zone, "--after")
    printed = 0
    for moment in islice(schedule.iter_after(after), args.count):
        print(moment.astimezone(zone).isoformat())
        printed += 1
    if not printed:  # an empty answer would read as a command that did nothing
        _err(
            f"lambdacron: {args.expression!r} has no fire time after "
            f"{after.astimezone(zone).isoformat(timespec='seconds')}"
        )
    return EXIT_OK


def _print_plan(plan: DryRun, as_json: bool) -> None:
    if as_json:
        _out(json.dumps(plan.to_json()))
        return
    for item in plan.planned:
        scheduled = f" (scheduled {stamp(item.scheduled)})" if item.scheduled else ""
        # The reason quotes the file (a claim's host), which may hold any text.
        what = f"would {item.would.value.replace('_', ' ')} {item.key}{scheduled}: {item.reason}"
        _out(what)
    _out(
        f"dry run {stamp(plan.now)}: {plan.seen} jobs, {plan.would_run} would run; "
        "nothing claimed, run or written"
    )


def _cmd_tick(args: argparse.Namespace) -> int:
    store = _store(args)
    clock = utcnow()
    now = _instant(args.now, "--now")
    if args.now is not None and now > clock and not (args.dry_run or args.allow_future):
        # Claims record the occurrence and last run: on a store a live runner uses, a tick
        # in the future runs occurrences early and then holds the jobs until that time.
        raise UsageError(
            f"--now: {stamp(now)} is later than the clock ({stamp(clock)}); it would run "
            "occurrences early and hold the store's jobs until then. Use --dry-run to see "
            "what would run, or --allow-future on a store no live runner uses"
        )
    if args.dry_run:
        with _engine(args, store) as engine:
            plan = dry_run(engine, now)
        if plan.listing_error is not None:
            _err(f"lambdacron: cannot list the store: {plan.listing_error}")
        _print_plan(plan, args.json)
        return EXIT_STORE if plan.listing_error is not None else EXIT_OK
    shards = args.shards or _settings().shards
    if shards == 1:
        with _engine(args, store) as engine:
            report, stopped_by = _stoppable(engine, partial(engine.tick, now))
        _out(json.dumps(report.to_json()) if args.json else report.summary())
        if stopped_by is not None:
            return 128 + stopped_by  # as the shell reports a command a signal ended
    else:
        workers = args.workers or _settings().workers
        report, stopped_by = tick_shards(
            partial(_shard_engine, args.store, workers), now, shards, _say_stopping
        )
        summary = report.summary() + f" ({shards} shards)"
        _out(json.dumps({**report.to_json(), "shards": shards}) if args.json else summary)
        if stopped_by is not None:
            return 128 + stopped_by
    return EXIT_STORE if report.listing_error is not None else EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    store = _store(args)
    err = _quietly(_err)

    def log(event: JobEvent) -> None:
        line = render_event(event)
        if line is not None:
            err(f"{stamp(utcnow())} {line}")

    # SIGHUP too: closing the terminal must not kill the runner mid-run, claims held.
    with StopRequests() as stop, stop.signalled(STOP_SIGNALS):
        lookahead = (
            default_lookahead(args.interval)
            if args.lookahead is None
            else timedelta(seconds=args.lookahead)
        )
        timer = TimerQueue(lookahead, utcnow) if lookahead else None
        with _engine(args, store, log=log, delivery=timer) as engine:
            serve(
                engine,
                args.interval,
                stop,
                clock=utcnow,
                out=_quietly(_out),
                say=lambda line: err(f"{stamp(utcnow())} {line}"),
                timer=timer,
            )
    return EXIT_OK


def _cmd_ls(args: argparse.Namespace) -> int:
    store = _store(args)
    rows = list(inventory(store, _instant(args.now, "--now")))
    if args.status is not None:
        rows = [row for row in rows if row.status == args.status]
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=2))
        return EXIT_OK
    if not rows:
        status = "" if args.status is None else f" with status {args.status!r}"
        _out(f"no jobs{status} in {store.url}")
        return EXIT_OK
    table: list[tuple[str, ...]] = [
        ("KEY", "SCHEDULE", "NEXT RUN", "LAST RUN", "LATE", "RUNS", "STATUS")
    ]
    for row in rows:
        when = row.when or "-"
        if row.timezone and row.timezone != "UTC":
            when += f" ({row.timezone})"
        runs = f"{row.runs}/{row.max_runs or '∞'}"
        status = row.status + (f": {row.error}" if row.error else "")
        late = "-" if row.lateness_ms is None else short_duration(row.lateness_ms)
        cells = (row.key, when, stamp(row.next_run), stamp(row.last_run), late, runs, status)
        # A job file may hold any text, the runner's fields included (last_result.status).
        table.append(tuple(printable(cell) for cell in cells))
    widths = [max(len(r[i]) for r in table) for i in range(6)]
    for r in table:
        _out("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "  " + r[6])
    return EXIT_OK


def _read_job_file(path: str, limit: int) -> bytes:
    """The file's bytes, read once (it may be a pipe), and never more than ``limit`` + 1."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > limit:
            raise JobTooLargeError(f"{size} bytes is over the {limit}-byte limit")
        with file.open("rb") as stream:
            body = stream.read(limit + 1)
    except OSError as exc:
        if isinstance(exc, LambdacronError):
            raise
        # Named by the caller, whole: a long path must not be cut like the reason may be.
        raise UsageError(f"cannot read: {exc.strerror or exc}") from exc
    if len(body) > limit:  # a pipe, or a file that grew
        raise JobTooLargeError(f"over the {limit}-byte limit")
    return body


_Checker = Callable[[str, bytes], tuple[Job | None, list[JobError], Any]]


def _file_problems(
    path: str, now: datetime, limit: int, checker: _Checker = load
) -> tuple[list[str], list[str], bytes]:
    """The file's problems and its warnings, as ``PATH: field: message`` lines, and the
    bytes that were checked (read once: what is checked is what is added)."""
    if not path.strip():  # Path("") is the working directory: "cannot read: Is a directory"
        return [f"{path!r}: a blank argument names no file"], [], b""
    try:
        body = _read_job_file(path, limit)
    except JobTooLargeError as exc:
        return [f"{path}: {exc}"], [], b""
    except UsageError as exc:  # cannot be read: a problem of this file, not of the command
        return [f"{path}: {exc}"], [], b""
    job, problems, document = checker(Path(path).name, body)
    warnings = [f"{path}: warning: {w}" for w in warnings_of(document)]
    if job is not None:
        try:
            validate(job.when, job.timezone, now)
        except ScheduleError as exc:
            return [f"{path}: when: {exc}"], warnings, body
    return describe_problems(path, problems), warnings, body


def _cmd_validate(args: argparse.Namespace) -> int:
    now = utcnow()
    limit = _settings().max_job_bytes
    failed = False
    for path in args.files:
        problems, warnings, _ = _file_problems(path, now, limit)
        failed = failed or bool(problems)
        for line in problems or [f"{path}: ok"]:
            _out(line)
        for line in warnings:
            _err(line)
    return EXIT_PROBLEMS if failed else EXIT_OK


def _cmd_add(args: argparse.Namespace) -> int:
    store = _store(args)
    problems, warnings, body = _file_problems(args.file, utcnow(), store.max_job_bytes, check)
    for line in [*problems, *warnings]:
        _err(line)
    if problems:
        return EXIT_USAGE
    # Checked by api.check, the rules of api.add; stored as it was read and checked.
    key = store.check_key(args.key or Path(args.file).name)
    store.create(key, body)
    _out(f"added {key}")
    return EXIT_OK


def _cmd_rm(args: argparse.Namespace) -> int:
    cancel(_store(args), args.key)
    _out(f"removed {args.key}")
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    key = store.check_key(args.key)
    body = store.read(key).body
    try:
        document = decode(body)
    except JobError as exc:
        raise JobError(args.key, str(exc)) from None
    # Shown as it is, and what keeps it from running said as validate says it: a file
    # shown without a word would pass for a job that runs.
    _, problems, _ = load(key, body)
    for line in describe_problems(args.key, problems):
        _err(f"lambdacron: {line}")
    status = EXIT_PROBLEMS if problems else EXIT_OK
    if not args.history:
        sys.stdout.write(json_for_terminal(encode(document).decode("utf-8")))
        return status
    history = document.get("history")
    entries = [e for e in history if isinstance(e, dict)] if isinstance(history, list) else []
    if not entries:
        _out(f"{args.key}: no history yet")
        return status
    table: list[tuple[str, ...]] = [
        ("OCCURRENCE", "STARTED", "ATTEMPT", "STATUS", "EXIT", "TOOK", "LATE", "ERROR")
    ]
    for entry in entries:
        table.append(
            tuple(
                printable(cell)
                for cell in (
                    _cell(entry.get("occurrence")),
                    _cell(entry.get("started")),
                    _cell(entry.get("attempt", 1)) + (" (by hand)" if entry.get("manual") else ""),
                    _cell(entry.get("status")),
                    _cell(entry.get("exit_code")),
                    _cell_ms(entry.get("duration_ms")),
                    _cell_ms(entry.get("lateness_ms")),
                    _cell(entry.get("error")),
                )
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        _out("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return status


def _cell(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def _cell_ms(value: object) -> str:
    # A number the runner wrote, though the file may hold anything there.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return short_duration(value)
    return _cell(value)


def _cmd_run(args: argparse.Namespace) -> int:
    store = _store(args)
    with _engine(args, store) as engine:
        try:
            report, stopped_by = _stoppable(engine, partial(engine.run_now, args.key))
        except JobNotFoundError:
            raise UsageError(f"{args.key}: no such job in {store.url}") from None
    if stopped_by is not None:
        return 128 + stopped_by
    ran = [e for e in report.events if e.outcome is Outcome.RAN]
    if not report.events:
        _err(f"lambdacron: {args.key}: not run: it changed while it was being claimed; try again")
    return EXIT_OK if ran and ran[0].status is Status.OK else EXIT_PROBLEMS


#: How a zip file starts: a local file header, or the end record of an empty zip.
_ZIP_STARTS = (b"PK\x03\x04", b"PK\x05\x06")


def _cmd_package(args: argparse.Namespace) -> int:
    from .package import build_zip, code_sha256

    data = build_zip()
    output = Path(args.output)
    try:
        # A package rebuilt replaces the last one; any other file named by a slip of the
        # hand (a job, a config, /etc/passwd for root) is not the user's to lose.
        if output.is_file() and output.stat().st_size:
            with output.open("rb") as existing:
                if existing.read(4) not in _ZIP_STARTS:
                    raise UsageError(
                        f"--output {args.output!r}: exists and is no zip file; not replaced"
                        " (remove it first, or name another file)"
                    )
        output.write_bytes(data)
    except OSError as exc:  # the path the user named: a folder, a missing folder, no right
        raise UsageError(f"--output {args.output!r}: cannot write: {exc.strerror or exc}") from None
    _out(f"wrote {args.output} ({len(data)} bytes, CodeSha256 {code_sha256(data)})")
    return EXIT_OK


def _cmd_deploy(args: argparse.Namespace) -> int:
    from .config import parse_allowed_types, parse_count
    from .deploy import Deployer, Wanted
    from .deploy.plan import MAX_DEADLINE_SECONDS

    allowed = (
        None
        if args.allowed_types is None
        else tuple(
            sorted(t.value for t in parse_allowed_types(args.allowed_types, "--allowed-types"))
        )
    )
    text: str | None = args.deadline_seconds
    deadline = (
        None
        if text is None
        else 0  # '' removes it
        if text == ""
        else parse_count("--deadline-seconds", text, high=MAX_DEADLINE_SECONDS)
    )
    wanted = Wanted(
        function_name=args.function_name,
        bucket=args.bucket,
        prefix=args.prefix,
        interval=args.interval,
        role_arn=args.role_arn,
        memory_mb=args.memory,
        timeout_s=args.timeout,
        # An empty --invoke-arn '' takes every invoke right away.
        invoke_arns=None if args.invoke_arn is None else tuple(a for a in args.invoke_arn if a),
        allowed_types=allowed,
        shards=args.shards,
        delivery_queue=args.delivery_queue,
        alarm_topic=args.alarm_topic,
        # As --invoke-arn: the list replaces the deployed one, '' alone empties it.
        notify_arns=None if args.notify_arn is None else tuple(a for a in args.notify_arn if a),
        on_failure=args.on_failure,
        retry=args.retry,
        deadline_seconds=deadline,
    )
    Deployer.from_session(args.region).deploy(wanted, dry_run=args.dry_run)
    return EXIT_OK


def _cmd_undeploy(args: argparse.Namespace) -> int:
    from .deploy import Deployer

    Deployer.from_session(args.region).undeploy(
        args.function_name, delete_role=not args.keep_role, dry_run=args.dry_run
    )
    return EXIT_OK


def _cmd_init(args: argparse.Namespace) -> int:
    store = _store(args, create=True)
    try:
        add(store, HELLO_JOB, "hello.json")
        _out(
            f"created {store.url} with hello.json (runs every minute); "
            f"now run: lambdacron serve" + (f" --store {args.store}" if args.store else "")
        )
    except LambdacronError:
        _out(f"{store.url} already has hello.json")
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lambdacron", description="Dynamic cron-like jobs stored as JSON files.")
    parser.add_argument("--version", action="version", version=f"lambdacron {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def with_store(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--store",
            help="job store: a directory or s3://BUCKET/PREFIX/ (default: $LAMBDACRON_STORE,"
            " else ./jobs)",
        )
        return p

    def with_workers(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--workers",
            type=_positive,
            help="jobs run at once (default: $LAMBDACRON_WORKERS, else 8)",
        )

    nxt = commands.add_parser(
        "next",
        help="print the next fire times of a schedule expression",
        description="Print the next fire times of a schedule expression, one ISO 8601 time a"
        " line; see docs/schedules.md for the forms.",
    )
    nxt.add_argument("expression", help="e.g. '30 18 * * *', 'rate(5 minutes)', 'at(...)'")
    nxt.add_argument(
        "--count",
        type=_count(high=MAX_NEXT_COUNT),
        default=5,
        help=f"how many, at most {MAX_NEXT_COUNT:,} (default 5)",
    )
    nxt.add_argument("--after", help="ISO 8601 start, exclusive (default: now)")
    nxt.add_argument(
        "--tz", default="UTC", help="IANA time zone of the schedule and output (default UTC)"
    )
    nxt.set_defaults(func=_cmd_next)

    tick = with_store(
        commands.add_parser(
            "tick",
            help="run one pass over the store",
            description="Run one pass: every job due at --now runs now. A job runs at its"
            " tick, not at its second: for that, keep `lambdacron serve` running, which plans"
            " ahead between its ticks. Exit 0 when the whole store was listed (failed jobs"
            " included), 2 for a usage error, 3 when the store could not be listed.",
        )
    )
    tick.add_argument("--now", help="pretend it is this time (ISO 8601; default: now)")
    tick.add_argument("--json", action="store_true", help="print the summary as JSON")
    tick.add_argument(
        "--shards",
        type=_shards,
        help=f"split the store into N shards ticked by N processes, at most {MAX_SHARDS} "
        "(default: $LAMBDACRON_SHARDS)",
    )
    tick.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would run and why; claim, run and write nothing",
    )
    tick.add_argument(
        "--allow-future",
        action="store_true",
        help="allow --now later than the clock (only on a store no live runner uses)",
    )
    with_workers(tick)
    tick.set_defaults(func=_cmd_tick)

    serve = with_store(
        commands.add_parser(
            "serve",
            help="tick on every interval until stopped",
            description="Tick at start, then on every interval boundary of the clock, and run"
            " each planned occurrence at its second in between. Ctrl-C (or SIGTERM) starts no"
            " new job and waits for the running ones; a second one stops them.",
        )
    )
    serve.add_argument(
        "--interval",
        type=_minutes,
        default=1,
        help=f"minutes, 1 to {MAX_INTERVAL_MINUTES} (default 1)",
    )
    serve.add_argument(
        "--lookahead",
        type=_lookahead,
        help="seconds each tick plans ahead, to run each job at its second; 0: run jobs only"
        " at the ticks, as `tick` does (default: the interval plus 60)",
    )
    with_workers(serve)
    serve.set_defaults(func=_cmd_serve)

    ls = with_store(
        commands.add_parser(
            "ls",
            help="list jobs with next and last run",
            description="List every job in key order: schedule, next run, last run, how late"
            " it started, runs/max and last status (with the error's first line when not ok);"
            " invalid files with their problem.",
        )
    )
    ls.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    ls.add_argument(
        "--status",
        type=_status,
        help=f"only jobs whose status is this: {_STATUS_NAMES}",
    )
    ls.add_argument("--now", help=argparse.SUPPRESS)
    ls.set_defaults(func=_cmd_ls)

    add_p = with_store(
        commands.add_parser(
            "add",
            help="validate a job file and add it",
            description="Validate a job file, then create it in the store as it was read"
            " (never overwriting a job). Exit 2 if it is invalid or the key is taken.",
        )
    )
    add_p.add_argument("file", help="the job file (a pipe works: it is read once)")
    add_p.add_argument("--key", help="key in the store (default: the file's name)")
    add_p.set_defaults(func=_cmd_add)

    rm = with_store(
        commands.add_parser(
            "rm",
            help="remove a job",
            description="Remove a job. A run under way is not stopped, and its result is not"
            " written back.",
        )
    )
    rm.add_argument("key", help="the job's key, e.g. orders/1234.json")
    rm.set_defaults(func=_cmd_rm)

    show = with_store(
        commands.add_parser(
            "show",
            help="print a job as stored",
            description="Print a job as stored, the runner's fields included.",
        )
    )
    show.add_argument("key", help="the job's key, e.g. orders/1234.json")
    show.add_argument(
        "--history", action="store_true", help="print its recent results as a table, newest first"
    )
    show.set_defaults(func=_cmd_show)

    run = with_store(
        commands.add_parser(
            "run",
            help="run a job now, once, out of its schedule",
            description="Run a job now, once, out of its schedule: claimed like any run (never"
            " alongside another run of it) and recorded with manual: true. It counts as a run"
            " and moves no schedule window; a job kept after failing is deleted if this run"
            " ends ok and its max_number_executions says so. Exit 0 if it ran ok, 1 if not.",
        )
    )
    run.add_argument("key", help="the job's key, e.g. orders/1234.json")
    with_workers(run)
    run.set_defaults(func=_cmd_run)

    val = commands.add_parser(
        "validate",
        help="check job files; exit 1 on any problem",
        description="Check job files as the runner reads them: one 'FILE: field: problem'"
        " line per problem, 'FILE: ok' otherwise. Exit 1 if any file has a problem.",
    )
    val.add_argument("files", nargs="+", metavar="FILE", help="a job file")
    val.set_defaults(func=_cmd_validate)

    init = with_store(
        commands.add_parser(
            "init",
            help="create the store with a hello job",
            description="Create the store (a directory) with hello.json, a job that runs"
            " `echo Hello from lambdacron` every minute.",
        )
    )
    init.set_defaults(func=_cmd_init)

    package = commands.add_parser(
        "package",
        help="build the AWS Lambda deployment zip",
        description="Build the AWS Lambda deployment zip: lambdacron and tzdata, pure Python,"
        " byte for byte reproducible.",
    )
    package.add_argument(
        "-o", "--output", default="lambdacron.zip", help="the zip to write (default lambdacron.zip)"
    )
    package.set_defaults(func=_cmd_package)

    deploy = commands.add_parser(
        "deploy",
        help="create or update the runner on AWS Lambda",
        description="Create or update the runner. A setting not given keeps its deployed "
        "value (the default when nothing is deployed); every change prints as old → new.",
    )
    deploy.add_argument(
        "--bucket", help="the S3 bucket holding the jobs (must exist; required the first time)"
    )
    deploy.add_argument("--prefix", help="the jobs' key prefix in the bucket (default: none)")
    deploy.add_argument("--interval", type=_positive, help="minutes between ticks (default 1)")
    deploy.add_argument(
        "--function-name", default="lambdacron", help="the function's name (default lambdacron)"
    )
    deploy.add_argument(
        "--role-arn", help="use this role instead of creating a least-privilege one"
    )
    deploy.add_argument("--region", help="AWS region (default: boto3's, e.g. $AWS_REGION)")
    deploy.add_argument("--memory", type=_positive, help="MB (default 512)")
    deploy.add_argument("--timeout", type=_positive, help="seconds (default 900)")
    deploy.add_argument(
        "--invoke-arn",
        action="append",
        help="a function lambda jobs may invoke (repeatable; replaces the deployed list; "
        "'' for none)",
    )
    deploy.add_argument(
        "--allowed-types", help="e.g. lambda: the run types the runner accepts ('' for all)"
    )
    deploy.add_argument(
        "--shards", type=_positive, help="fan each tick out into N shard invocations (default 1)"
    )
    deploy.add_argument(
        "--delivery-queue",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the SQS queue that delivers occurrences to the second (default: on for a new "
        "function); --no-delivery-queue: tick-only, and removes the queue, its dead-letter "
        "queue and mapping",
    )
    deploy.add_argument(
        "--alarm-topic",
        metavar="SNS_ARN",
        help="create CloudWatch alarms notifying this topic ('' removes them)",
    )
    deploy.add_argument(
        "--notify-arn",
        action="append",
        metavar="ARN",
        help="an SNS topic, SQS queue or Lambda function jobs may report failures to "
        "(repeatable; replaces the deployed list; '' for none)",
    )
    deploy.add_argument(
        "--on-failure",
        metavar="JSON",
        help='the store-wide failure destination: {"sns": TOPIC_ARN}, {"sqs": QUEUE_URL} or '
        "{\"lambda\": FUNCTION_ARN} ('' for none)",
    )
    deploy.add_argument(
        "--retry",
        metavar="JSON",
        help='the store-wide retry policy, e.g. {"attempts": 3, "backoff_seconds": 30} '
        "('' for none)",
    )
    deploy.add_argument(
        "--deadline-seconds",
        metavar="N",
        help="the store-wide deadline of a run, 1-2592000 seconds ('' for none)",
    )
    deploy.add_argument("--dry-run", action="store_true", help="print the changes, apply none")
    deploy.set_defaults(func=_cmd_deploy)

    undeploy = commands.add_parser(
        "undeploy",
        help="remove what deploy made (never the jobs)",
        description="Remove what deploy made: alarms, rule, mapping, function, queues and"
        " role; never the bucket or its jobs.",
    )
    undeploy.add_argument(
        "--function-name", default="lambdacron", help="the function's name (default lambdacron)"
    )
    undeploy.add_argument("--region", help="AWS region (default: boto3's, e.g. $AWS_REGION)")
    undeploy.add_argument(
        "--keep-role", action="store_true", help="keep the role deploy made (and its policy)"
    )
    undeploy.add_argument("--dry-run", action="store_true", help="print the changes, apply none")
    undeploy.set_defaults(func=_cmd_undeploy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        result: int = args.func(args)
        return result
    except LambdacronError as exc:
        # A user's mistake gets one clear line, never a traceback.
        _err(f"lambdacron: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
