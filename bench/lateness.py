"""Lateness: how long after its second each job starts, and whether each occurrence runs once.

    python bench/lateness.py                 # the full run (about 15 minutes: real ticks)
    python bench/lateness.py --smoke         # tiny sizes, no tick-only comparison (CI)
    python bench/lateness.py --parts rush --rush 5000 --rush-workers 8,64

Three parts, each a real process against real files or the AWS API over HTTP:

- ``local``: ``lambdacron serve`` on a temporary directory, with one-time ``at()`` jobs at
  random seconds over the next few minutes plus cron and ``rate(N seconds)`` jobs, at
  ``--interval 1`` and ``--interval 5``; beside each, the same workload under
  ``serve --lookahead 0`` (jobs run at the ticks only).
- ``rush``: the dinner rush, thousands of ``at()`` jobs at the same second, at several
  ``--workers``.
- ``sqs``: the Lambda handler in this process against moto (S3 on the test suite's
  serialised server, so a conditional write is atomic as on S3; SQS on a plain threaded
  ``moto_server``, so a long poll does not hold up S3), a tick thread invoking it with a
  scheduled event at start and at every interval boundary (1 and 5 minutes), and poller
  threads standing in for Lambda's event source mapping (``tests/sqs_poller.py``); beside
  it, the same without ``LAMBDACRON_DELIVERY_QUEUE``.

Every run appends ``KEY OCCURRENCE START`` to a file (bash, ``$EPOCHREALTIME``), so a run is
counted by the job itself: "late" is its process's start minus its occurrence, "claim p99"
the lateness lambdacron records (``last_result.lateness_ms``, to the claim). An occurrence
counts as expected when the runner promised it: in a planning run, every occurrence after
the first tick up to the last ``at()``; in a tick-only run, the latest occurrence before
each tick (the others are coalesced by design, and counted apart). A duplicate is an
occurrence run more than once; lost, an expected one never run.

By default the tick-only twin of each case runs at the same time as the planning run, under
``nice``, so the whole takes minutes rather than half an hour: its lateness is a tick's
anyway, and it yields the CPU to the run being measured. ``--sequential`` runs them apart.
Figures only, never an assertion.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import itertools
import json
import os
import random
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lambdacron.schedule import parse as parse_schedule

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
#: Nice value of a tick-only twin running beside the measured run.
TWIN_NICE = 15

# ----------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Workload:
    """``at()`` jobs at ``offsets`` seconds from a base time, and recurring jobs. With
    ``placed``, each ``at()`` job is placed that many seconds after the base, while the
    runner runs, instead of before it starts."""

    offsets: list[int]
    recurring: list[str]
    placed: list[float] = field(default_factory=list)

    def at_times(self, base: datetime) -> list[datetime]:
        return [base + timedelta(seconds=s) for s in self.offsets]

    def jobs(self, base: datetime, runs: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        for i, at in enumerate(self.at_times(base)):
            yield f"at/{i:05d}.json", job(f"at({at.strftime('%Y-%m-%dT%H:%M:%SZ')})", runs)
        for i, when in enumerate(self.recurring):
            yield f"every/{i:04d}.json", job(when, runs)


def job(when: str, runs: Path) -> dict[str, Any]:
    # bash's $EPOCHREALTIME: the start of the run's own process, no fork for a clock.
    line = '"$LAMBDACRON_JOB $LAMBDACRON_SCHEDULED_TIME $EPOCHREALTIME"'
    script = f"echo {line} >> {shlex.quote(str(runs))}"
    return {
        "when": when,
        "run": {"type": "command", "details": {"command": ["bash", "-c", script]}},
    }


def spread(rng: random.Random, count: int, lead: int, window: int, recurring: int) -> Workload:
    offsets = [lead + rng.randrange(window) for _ in range(count)]
    rates = [5, 7, 10, 13, 15, 20, 30, 45]
    crons = ["* * * * *", "*/2 * * * *"]
    every = [
        f"rate({rng.choice(rates)} seconds)" if i % 2 else rng.choice(crons)
        for i in range(recurring)
    ]
    return Workload(sorted(offsets), every)


def now_second() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def place_local(root: Path, workload: Workload, base: datetime, runs: Path) -> None:
    for key, document in workload.jobs(base, runs):
        if not (workload.placed and key.startswith("at/")):
            place_file(root / key, document)


def place_file(path: Path, document: dict[str, Any]) -> None:
    # Whole or not at all, as README asks of an edit while a runner is busy.
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(document))
    temp.replace(path)


def place_later(root: Path, workload: Workload, base: datetime, runs: Path) -> None:
    """Place each ``at()`` job at its time in ``workload.placed``."""
    jobs = [(key, doc) for key, doc in workload.jobs(base, runs) if key.startswith("at/")]
    for (key, document), offset in sorted(
        zip(jobs, workload.placed, strict=True), key=lambda pair: pair[1]
    ):
        wait = (base + timedelta(seconds=offset) - datetime.now(UTC)).total_seconds()
        if wait > 0:
            time.sleep(wait)
        place_file(root / key, document)


def added(rng: random.Random, count: int, lead: int, window: int, ahead: int) -> Workload:
    """``at()`` jobs placed at random moments while the runner runs, each for a random
    second up to ``ahead`` seconds after its placement."""
    placed = sorted(lead + rng.random() * window for _ in range(count))
    offsets = [round(p) + 2 + rng.randrange(ahead) for p in placed]
    return Workload(offsets, [], placed)


# ----------------------------------------------------------------------------- figures


@dataclass
class Figures:
    case: str
    late_s: list[float] = field(default_factory=list)
    claim_ms: list[int] = field(default_factory=list)
    runs: int = 0
    expected: int = 0
    duplicates: int = 0
    lost: int = 0
    coalesced: int = 0
    note: str = ""

    def row(self) -> str:
        late = sorted(self.late_s)
        claim = sorted(self.claim_ms)
        p99_claim = "-"
        if claim:
            # serve logs a lateness of a minute or more in whole minutes only
            value = percentile(claim, 0.99) / 1000
            p99_claim = f"{value:.3f}" if value < 60 else ">60"
        return (
            f"{self.case:<34}{self.runs:>6}{self.expected:>6}"
            f"{percentile(late, 0.5):>8.3f}{percentile(late, 0.99):>8.3f}"
            f"{(late[-1] if late else float('nan')):>8.3f}{p99_claim:>8}"
            f"{self.duplicates:>5}{self.lost:>5}{self.coalesced:>6}  {self.note}"
        )


HEADER = (
    f"{'case':<34}{'runs':>6}{'exp.':>6}{'p50 s':>8}{'p99 s':>8}{'max s':>8}{'claim':>8}"
    f"{'dup':>5}{'lost':>5}{'coal.':>6}"
)


def percentile(ordered: list[float] | list[int], share: float) -> float:
    if not ordered:
        return float("nan")
    return float(ordered[min(len(ordered) - 1, int(share * len(ordered)))])


def read_runs(path: Path) -> list[tuple[str, datetime, float]]:
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            found.append((parts[0], datetime.fromisoformat(parts[1]), float(parts[2])))
    return found


def figures(
    case: str,
    workload: Workload,
    base: datetime,
    runs_file: Path,
    ticks: list[datetime],
    planning: bool,
    claims: list[tuple[str, str, int]],
) -> Figures:
    """Count what ran against what the runner promised (see the module's docstring)."""
    first = ticks[0] + timedelta(seconds=1)  # a tick's time is printed to the second
    end = base + timedelta(seconds=max(workload.offsets, default=0))
    expected = {
        (key, at) for key, at in zip(at_keys(workload), workload.at_times(base), strict=True)
    }
    coalesced = 0
    for i, when in enumerate(workload.recurring):
        key, schedule = f"every/{i:04d}.json", parse_schedule(when)
        everything = set(occurrences(schedule.next_after, first, end))
        if planning:
            promised = everything
        else:
            bounds = [first, *ticks[1:]]
            promised = set()
            for start, stop in itertools.pairwise(bounds):
                latest = schedule.latest_in(start, stop)
                if latest is not None:
                    promised.add(latest)
            coalesced += len({t for t in everything if t <= bounds[-1]} - promised)
        expected |= {(key, at) for at in promised}
    ran = read_runs(runs_file)
    counted = Counter((key, at) for key, at, _ in ran)
    late: dict[tuple[str, datetime], float] = {}
    for key, at, started in ran:
        if (key, at) in expected:
            late.setdefault((key, at), started - at.timestamp())
    return Figures(
        case,
        late_s=list(late.values()),
        claim_ms=[ms for key, at, ms in claims if (key, datetime.fromisoformat(at)) in expected],
        runs=len(ran),
        expected=len(expected),
        duplicates=sum(n - 1 for n in counted.values() if n > 1),
        lost=len(expected - set(counted)),
        coalesced=coalesced,
    )


def at_keys(workload: Workload) -> list[str]:
    return [f"at/{i:05d}.json" for i in range(len(workload.offsets))]


def occurrences(
    next_after: Callable[[datetime], datetime | None], after: datetime, end: datetime
) -> Iterator[datetime]:
    current = next_after(after)
    while current is not None and current <= end:
        yield current
        current = next_after(current)


def all_at_ran(runs_file: Path, workload: Workload) -> bool:
    keys = {key for key, _, _ in read_runs(runs_file) if key.startswith("at/")}
    return len(keys) >= len(workload.offsets)


# ----------------------------------------------------------------------------- local serve

_TICK = re.compile(r"^tick (\S+Z):")
_LATE = re.compile(r"^\S+ ran (\S+) \(scheduled (\S+)\): \w+, ([\d.]+) (ms|s|min) late")
_UNIT_MS = {"ms": 1, "s": 1000, "min": 60_000}


def claim_lateness(log: str) -> list[tuple[str, str, int]]:
    """The lateness serve logs for each run (``12 ms late``, ``3.4 s late``)."""
    found = []
    for line in log.splitlines():
        if match := _LATE.match(line):
            found.append((match[1], match[2], round(float(match[3]) * _UNIT_MS[match[4]])))
    return found


def lambdacron_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LAMBDACRON_")}


@dataclass(frozen=True)
class LocalCase:
    case: str
    interval: int
    planning: bool
    workers: int = 8
    nice: int = 0


def run_local(
    spec: LocalCase,
    workload: Workload,
    base: datetime,
    folder: Path,
    settle: float,
    limit: float,
) -> Figures:
    """One ``lambdacron serve`` on its own store until the workload is over; its figures.

    The jobs are placed before ``serve`` starts, so its first tick plans them all."""
    root, runs_file = folder / "jobs", folder / "runs.txt"
    root.mkdir(parents=True)
    command = [sys.executable, "-m", "lambdacron", "serve", "--store", str(root)]
    command += ["--interval", str(spec.interval), "--workers", str(spec.workers)]
    if not spec.planning:
        command += ["--lookahead", "0"]
    if spec.nice:
        command = ["nice", "-n", str(spec.nice), *command]
    end = base + timedelta(seconds=max(workload.offsets, default=0))
    ticks: list[datetime] = []
    place_local(root, workload, base, runs_file)
    with open(folder / "serve.log", "w+") as log:
        serve = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, text=True, env=lambdacron_env()
        )
        assert serve.stdout is not None
        reader = threading.Thread(target=read_ticks, args=(serve.stdout, ticks), daemon=True)
        reader.start()
        if workload.placed:
            threading.Thread(
                target=place_later, args=(root, workload, base, runs_file), daemon=True
            ).start()
        deadline = end + timedelta(seconds=limit)
        try:
            while datetime.now(UTC) < deadline:
                time.sleep(0.25)
                if spec.planning:
                    done = datetime.now(UTC) >= end + timedelta(seconds=settle)
                    if done and all_at_ran(runs_file, workload):
                        break
                elif ticks and ticks[-1] >= end:  # summaries come when a tick has ended
                    break
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=120)
            reader.join(timeout=10)
        log.seek(0)
        claims = claim_lateness(log.read())
    if not ticks:
        return Figures(spec.case, note=f"no tick ended; see {folder / 'serve.log'}")
    return figures(spec.case, workload, base, runs_file, ticks, spec.planning, claims)


def read_ticks(stream: Any, ticks: list[datetime]) -> None:
    for line in stream:
        if match := _TICK.match(line):
            ticks.append(datetime.fromisoformat(match[1]))


def together(jobs: list[Callable[[], Figures]], sequential: bool) -> list[Figures]:
    """Run the cases at once (the measured one first), or one after another."""
    if sequential:
        return [run() for run in jobs]
    results: list[Figures | None] = [None] * len(jobs)

    def one(i: int) -> None:
        results[i] = jobs[i]()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r if r is not None else Figures("?", note="failed; see the traceback") for r in results]


# ----------------------------------------------------------------------------- SQS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_servers(queue: bool) -> tuple[list[subprocess.Popen[str]], dict[str, str]]:
    """S3 on the suite's serialised moto (atomic conditional writes); SQS on a threaded
    moto_server, since a long poll holds the serialised server for its whole wait."""
    servers = []
    s3 = subprocess.Popen(
        [sys.executable, str(TESTS / "moto_serial.py")], stdout=subprocess.PIPE, text=True
    )
    servers.append(s3)
    assert s3.stdout is not None
    endpoints = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{int(s3.stdout.readline())}"}
    if queue:
        port = free_port()
        moto = Path(sys.executable).with_name("moto_server")
        servers.append(
            subprocess.Popen(
                [str(moto), "-H", "127.0.0.1", "-p", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        )
        endpoints["AWS_ENDPOINT_URL_SQS"] = f"http://127.0.0.1:{port}"
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.05)
    return servers, endpoints


class Context:
    """A Lambda context: the time left of a 900-second function."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + 900

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


def load_poller() -> Any:
    spec = importlib.util.spec_from_file_location("sqs_poller", TESTS / "sqs_poller.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sqs_worker(config: dict[str, Any]) -> dict[str, Any]:
    """One SQS case in this process (started by ``run_sqs``); what it saw, as JSON."""
    if config["nice"]:
        os.nice(config["nice"])
    planning: bool = config["planning"]
    workload = Workload(config["offsets"], config["recurring"])
    runs_file = Path(config["runs"])
    servers, endpoints = start_servers(planning)
    os.environ.update(
        endpoints,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        LAMBDACRON_BUCKET="lateness",
        LAMBDACRON_PREFIX="jobs",
        LAMBDACRON_INTERVAL=str(config["interval"]),
    )
    import boto3

    from lambdacron import handler
    from lambdacron.config import Settings
    from lambdacron.sqs import SqsDelivery
    from lambdacron.store.s3 import S3Store

    requests: Counter[str] = Counter()

    def count(client: Any) -> Any:
        client.meta.events.register(
            "before-call", lambda event_name, **_: requests.update([event_name.split(".", 1)[1]])
        )
        return client

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lateness")
    sqs = queue_url = None
    if planning:
        sqs = count(boto3.client("sqs"))
        queue_url = sqs.create_queue(QueueName="delivery", Attributes={"VisibilityTimeout": "60"})[
            "QueueUrl"
        ]
        os.environ["LAMBDACRON_DELIVERY_QUEUE"] = queue_url
    base = now_second() + timedelta(seconds=2)  # the placing takes a moment
    for key, document in workload.jobs(base, runs_file):
        s3.put_object(Bucket="lateness", Key=f"jobs/{key}", Body=json.dumps(document).encode())
    # The engine the handler will use (the same settings, the same cache key), made now to
    # count its requests.
    _, engine = handler._engine(Settings.from_env(os.environ))
    if isinstance(engine.store, S3Store):
        count(engine.store.client)
    if isinstance(engine.delivery, SqsDelivery):
        count(engine.delivery.client)
    requests.clear()
    end = base + timedelta(seconds=max(workload.offsets, default=0))
    ticks: list[datetime] = []
    batches: list[float] = []
    stop = threading.Event()
    log = open(config["log"], "w")  # noqa: SIM115 - the handler's stdout, kept to the end
    # For the whole run, not per invocation: redirect_stdout in concurrent threads restores
    # one another's streams in the wrong order.
    stdout, sys.stdout = sys.stdout, log

    def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
        begin = time.monotonic()
        try:
            reply: dict[str, Any] = handler.lambda_handler(event, context)
            return reply
        finally:
            if "Records" in event:
                batches.append(time.monotonic() - begin)

    def tick_thread() -> None:
        moment = datetime.now(UTC).replace(microsecond=0)
        while not stop.is_set():
            invoke({"time": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}, Context())
            ticks.append(moment)
            period = 60 * config["interval"]
            moment = datetime.fromtimestamp((int(time.time()) // period + 1) * period, UTC)
            while not stop.is_set() and datetime.now(UTC) < moment:
                stop.wait(min(1.0, (moment - datetime.now(UTC)).total_seconds()))

    poller = load_poller()

    def poll_thread() -> None:
        assert sqs is not None
        while not stop.is_set():
            count, _ = poller.poll_once(
                sqs, queue_url, invoke, Context(), wait_seconds=config["wait"]
            )
            if count == 0 and config["wait"] == 0:
                time.sleep(config["idle"])

    threads = [threading.Thread(target=tick_thread)]
    if planning:
        threads += [threading.Thread(target=poll_thread) for _ in range(config["pollers"])]
    for thread in threads:
        thread.start()
    deadline = end + timedelta(seconds=config["limit"])
    try:
        while datetime.now(UTC) < deadline:
            time.sleep(0.25)
            if planning:
                done = datetime.now(UTC) >= end + timedelta(seconds=config["settle"])
                if done and all_at_ran(runs_file, workload):
                    break
            elif len(ticks) > 1 and ticks[-1] >= end:
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for engine in handler._engines.values():
            engine.close()
        sys.stdout = stdout
        log.close()
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
    claims = []
    for line in Path(config["log"]).read_text().splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("event") == "job" and "lateness_ms" in record:
                claims.append((record["key"], record["scheduled"], record["lateness_ms"]))
    return {
        "base": base.isoformat(),
        "ticks": [t.isoformat() for t in ticks],
        "claims": claims,
        "requests": dict(requests),
        "batches": batches,
    }


@dataclass(frozen=True)
class SqsCase:
    case: str
    planning: bool
    nice: int = 0
    interval: int = 1


def run_sqs(
    spec: SqsCase, workload: Workload, folder: Path, args: argparse.Namespace
) -> tuple[Figures, dict[str, Any]]:
    folder.mkdir(parents=True)
    config = {
        "planning": spec.planning,
        "nice": spec.nice,
        "interval": spec.interval,
        "offsets": workload.offsets,
        "recurring": workload.recurring,
        "runs": str(folder / "runs.txt"),
        "log": str(folder / "handler.log"),
        "pollers": args.pollers,
        "wait": args.poll_wait,
        "idle": args.poll_idle,
        "settle": args.settle,
        "limit": args.limit,
    }
    (folder / "config.json").write_text(json.dumps(config))
    done = subprocess.run(
        [sys.executable, __file__, "--sqs-worker", str(folder / "config.json")],
        capture_output=True,
        text=True,
        env=lambdacron_env(),
    )
    if done.returncode != 0:
        return Figures(spec.case, note=done.stderr.strip().splitlines()[-1]), {}
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    base = datetime.fromisoformat(seen["base"])
    ticks = [datetime.fromisoformat(t) for t in seen["ticks"]]
    result = figures(
        spec.case, workload, base, folder / "runs.txt", ticks, spec.planning, seen["claims"]
    )
    return result, seen


def sqs_costs(case: str, seen: dict[str, Any], runs: int) -> str:
    requests: dict[str, int] = seen.get("requests", {})
    batches: list[float] = seen.get("batches", [])

    def listed(service: str) -> str:
        found = {
            k.split(".", 1)[1]: v
            for k, v in requests.items()
            # The stand-in poller's own question, which Lambda's event source mapping never asks.
            if k.startswith(service) and k != "sqs.GetQueueAttributes"
        }
        total = sum(found.values())
        return f"{total} ({', '.join(f'{k} {v}' for k, v in sorted(found.items()))})"

    line = f"  {case}: {runs} runs; S3 requests {listed('s3.')}"
    if batches:
        line += (
            f"; SQS requests {listed('sqs.')}; {len(batches)} SQS-triggered invocations,"
            f" mean {statistics.fmean(batches):.2f} s"
        )
    return line


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no tick-only twins")
    parser.add_argument("--parts", default="local,added,rush,sqs", help="which, in order")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--at", type=int, default=1000, help="at() jobs of the local part")
    parser.add_argument("--recurring", type=int, default=100, help="cron and rate jobs")
    parser.add_argument("--intervals", default="1,5", help="serve --interval values")
    parser.add_argument("--window", default="1:150,5:180", help="INTERVAL:SECONDS of at()s")
    parser.add_argument("--lead", type=int, default=5, help="seconds before the first at()")
    parser.add_argument("--added", type=int, default=100, help="at() jobs placed later")
    parser.add_argument("--added-window", type=int, default=60)
    parser.add_argument("--added-ahead", type=int, default=30)
    parser.add_argument("--rush", type=int, default=2000, help="at() jobs at one second")
    parser.add_argument("--rush-workers", default="8,32")
    parser.add_argument("--rush-lead", type=int, default=15)
    parser.add_argument("--sqs-at", type=int, default=300)
    parser.add_argument("--sqs-recurring", type=int, default=30)
    parser.add_argument("--sqs-intervals", default="1,5", help="tick intervals (minutes)")
    parser.add_argument("--sqs-windows", default="1:150,5:360", help="INTERVAL:SECONDS")
    parser.add_argument("--pollers", type=int, default=1, help="threads standing in for ESM")
    parser.add_argument(
        "--poll-wait",
        type=int,
        default=0,
        help="ReceiveMessage WaitTimeSeconds; moto notices a delayed message that became"
        " visible only when a 1-second wait inside a long poll expires, which real SQS does"
        " not, so 0 (short polls --poll-idle apart) by default",
    )
    parser.add_argument("--poll-idle", type=float, default=0.05)
    parser.add_argument("--no-twins", action="store_true", help="skip the tick-only twins")
    parser.add_argument("--sequential", action="store_true", help="twins after, not beside")
    parser.add_argument("--settle", type=float, default=5.0, help="s past the last at()")
    parser.add_argument("--limit", type=float, default=120.0, help="s past it, at most")
    parser.add_argument("--dir", help="keep the stores, runs and logs here (a new folder)")
    parser.add_argument("--sqs-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sqs_worker:
        print(json.dumps(sqs_worker(json.loads(Path(args.sqs_worker).read_text()))))
        return
    if args.smoke:
        args.at, args.recurring, args.intervals, args.window, args.lead = 40, 6, "1", "1:6", 3
        args.rush, args.rush_lead = 100, 4
        args.sqs_at, args.sqs_recurring = 20, 4
        args.sqs_intervals, args.sqs_windows = "1", "1:6"
        args.no_twins, args.settle, args.limit = True, 2.0, 30.0
        args.parts = ",".join(p for p in args.parts.split(",") if p != "added")
    parts = {p for p in args.parts.split(",") if p}
    windows = {int(k): int(v) for k, v in (w.split(":") for w in args.window.split(","))}
    rng = random.Random(args.seed)
    print(
        f"lateness of a run: its process's start minus its occurrence; {os.cpu_count()} cores,"
        f" python {sys.version.split()[0]}; twins "
        f"{'off' if args.no_twins else 'after' if args.sequential else f'beside, nice {TWIN_NICE}'}"
    )
    rows: list[Figures] = []
    notes: list[str] = []
    with contextlib.ExitStack() as scope:
        if args.dir:
            folder = Path(args.dir)
            folder.mkdir(parents=True, exist_ok=False)
        else:
            folder = Path(scope.enter_context(tempfile.TemporaryDirectory(prefix="lateness-")))
        if "local" in parts:
            for interval in [int(x) for x in args.intervals.split(",") if x]:
                window = windows.get(interval, 150)
                workload = spread(rng, args.at, args.lead, window, args.recurring)
                base = now_second()
                cases = [LocalCase(f"serve -i {interval}, lookahead default", interval, True)]
                if not args.no_twins:
                    nice = 0 if args.sequential else TWIN_NICE
                    cases.append(
                        LocalCase(f"serve -i {interval}, lookahead 0", interval, False, 8, nice)
                    )
                print(
                    f"local, --interval {interval}: {args.at} at() over {window} s and"
                    f" {args.recurring} cron/rate jobs ...",
                    flush=True,
                )

                def local(spec: LocalCase, w: Workload = workload, b: datetime = base) -> Figures:
                    place = folder / re.sub(r"\W+", "-", spec.case)
                    if args.sequential and not spec.planning:
                        b = now_second()  # a later start: the same offsets from now
                    return run_local(spec, w, b, place, args.settle, args.limit + 300)

                rows += together([functools.partial(local, s) for s in cases], args.sequential)
        if "added" in parts:
            workload = added(rng, args.added, args.lead, args.added_window, args.added_ahead)
            print(
                f"added: {args.added} at() placed over {args.added_window} s while serve runs,"
                f" each 2 to {args.added_ahead + 1} s ahead ...",
                flush=True,
            )
            late = LocalCase("added while serving, -i 1", 1, True)
            place = folder / "added"
            rows.append(run_local(late, workload, now_second(), place, args.settle, args.limit))
        if "rush" in parts:
            for workers in [int(x) for x in args.rush_workers.split(",") if x]:
                base = now_second()
                lead = args.rush_lead
                # Not on a minute boundary: the rush alone, not the rush and a tick.
                while (base + timedelta(seconds=lead)).second in (58, 59, 0, 1, 2):
                    lead += 1
                workload = Workload([lead] * args.rush, [])
                print(f"rush: {args.rush} at() at one second, --workers {workers} ...", flush=True)
                rush = LocalCase(f"rush {args.rush}, --workers {workers}", 1, True, workers)
                place = folder / f"rush-{workers}"
                rows.append(run_local(rush, workload, base, place, args.settle, args.limit))
        sqs_windows = dict(
            (int(k), int(v)) for k, v in (w.split(":") for w in args.sqs_windows.split(",") if w)
        )
        for interval in (
            [int(x) for x in args.sqs_intervals.split(",") if x] if "sqs" in parts else []
        ):
            window = sqs_windows.get(interval, 150)
            workload = spread(rng, args.sqs_at, args.lead, window, args.sqs_recurring)
            print(
                f"sqs, interval {interval}: {args.sqs_at} at() over {window} s and"
                f" {args.sqs_recurring} cron/rate jobs, {args.pollers} poller(s) ...",
                flush=True,
            )
            specs = [SqsCase(f"lambda -i {interval} + SQS (moto)", True, interval=interval)]
            if not args.no_twins:
                nice = 0 if args.sequential else TWIN_NICE
                specs.append(
                    SqsCase(f"lambda -i {interval} tick-only (moto)", False, nice, interval)
                )
            seen: dict[str, dict[str, Any]] = {}

            def sqs(spec: SqsCase, workload: Workload, seen: dict[str, Any]) -> Figures:
                result, seen[spec.case] = run_sqs(
                    spec, workload, folder / re.sub(r"\W+", "-", spec.case), args
                )
                return result

            found = together(
                [functools.partial(sqs, s, workload, seen) for s in specs], args.sequential
            )
            rows += found
            for spec, result in zip(specs, found, strict=True):
                notes.append(sqs_costs(spec.case, seen.get(spec.case, {}), result.runs))
    print()
    print(HEADER)
    for row in rows:
        print(row.row())
    for note in notes:
        print(note)
    print(
        "runs: counted by the jobs; exp.: expected occurrences; claim: p99 of the lateness"
        " lambdacron records (to the claim); coal.: occurrences a tick-only runner coalesces"
        " by design"
    )


if __name__ == "__main__":
    main()
