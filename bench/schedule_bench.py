"""Schedule benchmark: parse cost and the cost of one "fires in (a, b]?" check.

Run: python bench/schedule_bench.py [--repeat N]
Prints a table; lambdacron is measured beside cronsim and croniter used directly,
in the same process, on the same expressions and windows. No assertions: figures only.
"""

from __future__ import annotations

import argparse
import platform
import timeit
from datetime import UTC, datetime, timedelta

from croniter import croniter
from cronsim import CronSim

from lambdacron.schedule import parse

EXPRESSIONS = [
    "* * * * *",
    "*/5 * * * *",
    "0 * * * *",
    "30 18 * * *",
    "0 9 * * MON-FRI",
    "0 0 1 * *",
    "15 3 1 1 *",
    "0 12 * * 5#2",
    "0 0 29 2 *",
    "45 6 10 3 *",
]
A = datetime(2026, 11, 27, 12, 0, 30, tzinfo=UTC)
B = A + timedelta(minutes=1)


def per_call_us(stmt: object, number: int, repeat: int) -> float:
    best = min(timeit.repeat(stmt, number=number, repeat=repeat))  # type: ignore[arg-type]
    return best / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--number", type=int, default=200)
    args = parser.parse_args()
    uncached = parse.__wrapped__  # type: ignore[attr-defined]
    n, r = args.number, args.repeat
    print(f"python {platform.python_version()} on {platform.machine()}; best of {r} x {n} calls")
    print(f"window (a, b] = ({A.isoformat()}, {B.isoformat()}]")
    header = (
        f"{'expression':<18}{'parse':>9}{'cached':>9}{'check':>9}"
        f"{'cronsim':>10}{'croniter':>10}   (microseconds per call)"
    )
    print(header)
    totals = [0.0] * 5
    for expr in EXPRESSIONS:
        sched = parse(expr)
        row = [
            per_call_us(lambda e=expr: uncached(e, "UTC"), n, r),
            per_call_us(lambda e=expr: parse(e, "UTC"), n, r),
            per_call_us(lambda s=sched: s.latest_in(A, B), n, r),
            per_call_us(lambda e=expr: next(CronSim(e, A)) <= B, n, r),
            per_call_us(lambda e=expr: croniter(e, A).get_next(datetime) <= B, n, r),
        ]
        totals = [t + v for t, v in zip(totals, row, strict=True)]
        print(
            f"{expr:<18}"
            + "".join(f"{v:>9.1f}" for v in row[:3])
            + "".join(f"{v:>10.1f}" for v in row[3:])
        )
    mean = [t / len(EXPRESSIONS) for t in totals]
    print(
        f"{'mean':<18}"
        + "".join(f"{v:>9.1f}" for v in mean[:3])
        + "".join(f"{v:>10.1f}" for v in mean[3:])
    )
    jobs = 100_000
    start = timeit.default_timer()
    for i in range(jobs):
        parse(EXPRESSIONS[i % len(EXPRESSIONS)], "UTC")
    elapsed = timeit.default_timer() - start
    print(f"{jobs} jobs sharing {len(EXPRESSIONS)} expressions: parsed in {elapsed * 1000:.1f} ms")


if __name__ == "__main__":
    main()
