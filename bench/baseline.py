"""The original lambdacron's tick, reimplemented faithfully as the yardstick.

What the original did on every tick: list the prefix; GET and parse every job; check each
one by looking to the past (was its previous fire time after its last run?); run the due
ones one after another; after each run PUT the job back, or DELETE it once it has run
``max_number_executions`` times. No index, no concurrency, no claims.

It is given every advantage that is not part of the algorithm: the same store classes and
clients, lambdacron's own (cached, fast) schedule evaluation instead of re-parsing with
croniter, and the same no-op action.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from lambdacron.actions.base import Action, RunContext
from lambdacron.schedule import parse, parse_instant
from lambdacron.store.base import Store


def baseline_tick(
    store: Store, now: datetime, action: Action, interval: timedelta = timedelta(minutes=1)
) -> dict[str, int]:
    counts = {"seen": 0, "due": 0, "ran": 0, "deleted": 0}
    for entry in store.list():
        counts["seen"] += 1
        document = store.read(entry.key)
        job: dict[str, Any] = json.loads(document.body)
        schedule = parse(job["when"], job.get("timezone", "UTC"))
        previous = schedule.latest_at_or_before(now)
        last_run = job.get("last_run")
        since = parse_instant(last_run, UTC) if last_run else now - interval
        if previous is None or previous <= since:
            continue
        counts["due"] += 1
        count = int(job.get("execution_count", 0)) + 1
        context = RunContext(entry.key, previous, count, 300, now)
        action.run(None, context)  # type: ignore[arg-type]
        counts["ran"] += 1
        limit = int(job.get("max_number_executions", 0))
        if limit and count >= limit:
            store.delete(entry.key, document.version)
            counts["deleted"] += 1
            continue
        job["execution_count"] = count
        job["last_run"] = now.isoformat()
        store.write(entry.key, json.dumps(job).encode(), document.version)
    return counts
