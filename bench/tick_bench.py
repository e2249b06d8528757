"""Tick benchmark: lambdacron against the original algorithm, in the same run.

    python bench/tick_bench.py                      # the full table (several minutes)
    python bench/tick_bench.py --smoke              # tiny sizes: checks that it works
    python bench/tick_bench.py --local 100000 --s3 '' --profile

Workload: N jobs with a realistic mix of schedules (every minute, hourly, daily, yearly with
a year field, one-time at() in the future, rate()), 1% of them due at every tick, and a
no-op action for both sides so the scheduler is what is measured. S3 runs against the
test suite's moto server on loopback. Each measurement runs in a fresh process, which
reports its own peak RSS. A "cold" tick starts with an empty index; a "steady" tick follows
it one minute later, with nothing changed but the due jobs' own state.

S3 requests are counted at the client with botocore's event hooks. No assertions here:
figures only (the README and docs/scaling.md quote them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def mix(t0: datetime) -> list[tuple[float, str]]:
    """(share of the non-due jobs, schedule), none of them due at t0 or a minute later."""
    later = t0 + timedelta(hours=6)
    return [
        (0.30, f"{(t0.minute + 30) % 60} * * * *"),  # hourly
        (0.30, f"{later.minute} {later.hour} * * *"),  # daily
        (0.15, f"0 0 1 1 * {t0.year + 1}"),  # yearly, with a year field
        (0.15, f"at({t0.year + 1}-03-01T09:00:00)"),  # one time, in the future
        (0.10, "rate(7 days)"),
    ]


def workload(n: int, due_share: float, t0: datetime) -> list[tuple[str, bytes]]:
    due = max(1, round(n * due_share))
    schedules = mix(t0)
    jobs: list[tuple[str, bytes]] = []
    run = {"type": "command", "details": {"command": ["true"]}}
    for i in range(n):
        if i < due:
            when = "* * * * *"
        else:
            position = (i - due) / max(1, n - due)
            acc = 0.0
            when = schedules[-1][1]
            for share, expression in schedules:
                acc += share
                if position < acc:
                    when = expression
                    break
        body = json.dumps({"when": when, "run": run, "customer": i}).encode()
        jobs.append((f"{i % 256:02x}/{i:08d}.json", body))
    return jobs


# --------------------------------------------------------------------------- one measurement


def peak_rss_mb() -> float:
    """This process's peak RSS. Not ru_maxrss: Linux carries that across exec, so it would
    include the process this one was forked from."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _noop_action() -> Any:
    from lambdacron.actions.base import Action, Result
    from lambdacron.job import RunType, Status

    class Noop(Action):
        run_type = RunType.COMMAND

        def run(self, spec: Any, context: Any) -> Result:
            return Result(Status.OK, context.started, 0, 0, "")

    return Noop()


def measure(variant: str, store_name: str, profile: bool, t0: datetime) -> dict[str, Any]:
    from baseline import baseline_tick
    from lambdacron.engine import Engine
    from lambdacron.store import open_store

    store = open_store(store_name)
    requests: Counter[str] = Counter()
    client = getattr(store, "client", None)
    if client is not None:
        client.meta.events.register(
            "before-call.s3", lambda model, **_: requests.update([model.name])
        )
    action = _noop_action()
    results: dict[str, Any] = {}

    def run(label: str, now: datetime) -> None:
        requests.clear()
        before = resource.getrusage(resource.RUSAGE_SELF)
        begin = time.perf_counter()
        if variant == "baseline":
            counts = baseline_tick(store, now, action)
        else:
            counts = engine.tick(now).to_json()
        seconds = time.perf_counter() - begin
        after = resource.getrusage(resource.RUSAGE_SELF)
        results[label] = {
            "seconds": seconds,
            # This process's user + system time, every thread: what the tick costs in CPU,
            # apart from what it waits for (the moto server is another process).
            "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
            "requests": dict(requests),
            "ran": counts["ran"],
            "seen": counts["seen"],
        }

    if variant == "baseline":
        run("cold", t0)
        run("steady", t0 + timedelta(minutes=1))
    else:
        engine = Engine(
            store, {action.run_type: action}, clock=lambda: datetime.now(UTC), workers=8
        )
        run("cold", t0)
        if profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            run("steady", t0 + timedelta(minutes=1))
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative")
            stats.print_stats(18)
        else:
            run("steady", t0 + timedelta(minutes=1))
        engine.close()
    results["peak_rss_mb"] = peak_rss_mb()
    return results


# --------------------------------------------------------------------------- orchestration


def populate_local(root: Path, jobs: list[tuple[str, bytes]], t0: datetime) -> None:
    placed = (t0 - timedelta(seconds=30)).timestamp()
    for key, body in jobs:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        os.utime(path, (placed, placed))


def populate_s3(bucket: str, jobs: list[tuple[str, bytes]]) -> None:
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda kb: client.put_object(Bucket=bucket, Key=f"jobs/{kb[0]}", Body=kb[1]), jobs
            )
        )


def in_subprocess(variant: str, store: str, profile: bool, t0: datetime) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", variant, "--store", store, "--t0", t0.isoformat()]
        + (["--profile"] if profile else []),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{variant} on {store} failed:\n{result.stderr[-3000:]}")
    lines = result.stdout.strip().splitlines()
    if profile:
        print("\n".join(lines[:-1]))
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def fmt_requests(counts: dict[str, int]) -> str:
    if not counts:
        return "-"
    short = {
        "ListObjectsV2": "LIST",
        "GetObject": "GET",
        "PutObject": "PUT",
        "DeleteObject": "DEL",
        "HeadObject": "HEAD",
    }
    total = sum(counts.values())
    return (
        f"{total} (" + " ".join(f"{short.get(k, k)} {v}" for k, v in sorted(counts.items())) + ")"
    )


def start_moto() -> subprocess.Popen[str]:
    """The standard ``moto_server`` on a free loopback port: threaded, like S3 is concurrent.

    (The test suite serialises moto to make conditional writes atomic; one runner at a time
    here needs no such thing, and a serialised server would hide the value of parallel I/O.)
    """
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--local", default="1000,10000,100000")
    parser.add_argument("--s3", default="1000,10000")
    parser.add_argument("--due", type=float, default=0.01)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check it works")
    parser.add_argument("--profile", action="store_true", help="cProfile the steady tick")
    parser.add_argument(
        "--variants",
        default="baseline,lambdacron",
        help="which to measure: 'lambdacron' alone skips the baseline's run",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--t0", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        t0 = datetime.fromisoformat(args.t0)
        print(json.dumps(measure(args.worker, args.store, args.profile, t0)))
        return
    if args.smoke:
        args.local, args.s3 = "300", "300"
    import tempfile

    rows = []
    server = start_moto() if args.s3 else None
    try:
        for kind, sizes in (("local", args.local), ("s3", args.s3)):
            for n in [int(x) for x in sizes.split(",") if x]:
                # The tick times: a little after the jobs are placed (S3 stamps LastModified
                # itself), so only the every-minute jobs are due, at both ticks.
                now = datetime.now(UTC)
                t0 = now.replace(second=0, microsecond=0) + timedelta(minutes=15)
                jobs = workload(n, args.due, t0)
                with tempfile.TemporaryDirectory() as tmp:
                    stores = {}
                    for variant in args.variants.split(","):
                        if kind == "local":
                            root = Path(tmp) / variant
                            populate_local(root, jobs, t0)
                            stores[variant] = str(root)
                        else:
                            bucket = f"bench-{variant}-{n}-{os.getpid()}"
                            populate_s3(bucket, jobs)
                            stores[variant] = f"s3://{bucket}/jobs/"
                    measured = {
                        v: in_subprocess(v, stores[v], args.profile and v == "lambdacron", t0)
                        for v in stores
                    }
                due = max(1, round(n * args.due))
                rows.append((kind, n, due, measured))
    finally:
        if server is not None:
            server.terminate()
    print(
        f"\nN jobs, {args.due:.0%} due per tick, no-op action; python "
        f"{sys.version.split()[0]}, {os.cpu_count()} cores"
    )
    header = (
        f"{'store':<6}{'N':>8}  {'variant':<11}{'cold s':>8}{'steady s':>10}"
        f"{'CPU s':>7}{'RSS MB':>8}  steady requests"
    )
    print(header)
    for kind, n, due, measured in rows:
        for variant, data in measured.items():
            print(
                f"{kind:<6}{n:>8}  {variant:<11}{data['cold']['seconds']:>8.2f}"
                f"{data['steady']['seconds']:>10.3f}{data['steady']['cpu']:>7.2f}"
                f"{data['peak_rss_mb']:>8.0f}  "
                f"{fmt_requests(data['steady']['requests'])}"
            )
        if "lambdacron" not in measured:
            continue
        ours = measured["lambdacron"]
        line = f"{'':<16}ran {ours['steady']['ran']} of {due} due"
        if "baseline" in measured:
            base = measured["baseline"]["steady"]["seconds"]
            ratio = base / max(ours["steady"]["seconds"], 1e-9)
            line = f"{'':<16}steady-state speed-up {ratio:.1f}x; " + line.lstrip()
        if kind == "s3":
            budget = math.ceil(n / 1000) + 3 * due + 10
            made = sum(ours["steady"]["requests"].values())
            line += f"; requests {made} (target <= ceil(N/1000) + 3 x due + 10 = {budget})"
        print(line)


if __name__ == "__main__":
    main()
