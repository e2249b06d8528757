"""Planning windows against an oracle: consecutive ticks plan ``(now, now + lookahead]``
each, and the deliveries, at their seconds, late by a fraction, duplicated as an
at-least-once queue does, run every occurrence of the union exactly once.

Schedules are drawn where the arithmetic is delicate: ``rate(N seconds)`` with N not
dividing a minute, ``at()`` with a fraction of a second, and cron in zones whose clock
jumps or goes back during the ticks; tick times fall on and off whole seconds, and the
lookahead on and just past the interval.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import FakeClock, Recorder, command_job, place, utc
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.engine.delivery import Delivered, Occurrence
from lambdacron.engine.report import Outcome
from lambdacron.schedule import parse
from lambdacron.store import LocalStore

#: Instants a zone's clock changes (UTC), and the zone.
CHANGES = [
    ("Europe/Berlin", utc(2026, 3, 29, 1)),  # 02:00 -> 03:00
    ("Europe/Berlin", utc(2026, 10, 25, 1)),  # 03:00 -> 02:00
    ("America/New_York", utc(2026, 3, 8, 7)),
    ("America/New_York", utc(2026, 11, 1, 6)),
    ("Australia/Lord_Howe", utc(2026, 4, 4, 15)),  # 02:00 -> 01:30
    ("Australia/Lord_Howe", utc(2026, 10, 3, 15, 30)),  # 02:00 -> 02:30
    ("UTC", utc(2026, 6, 1, 2, 30)),
]
CRONS = ["*/15 1-3 * * *", "30 2 * * *", "0,30 * * * *", "*/5 2 * * *", "45 1 * * *"]
RATES = [2, 7, 13, 45, 90, 61]


@dataclass
class Case:
    when: str
    zone: str
    start: datetime  # the first tick
    interval: timedelta
    ticks: int
    lookahead: timedelta
    seed: int
    placed: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.placed = self.start - timedelta(seconds=1)

    @property
    def end(self) -> datetime:
        return self.start + self.interval * (self.ticks - 1)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    zone, change = draw(st.sampled_from(CHANGES))
    kind = draw(st.sampled_from(["cron", "rate", "at"]))
    interval = timedelta(minutes=draw(st.sampled_from([1, 2, 5])))
    # On a whole second as EventBridge's ticks are, or not, as serve's first tick is.
    phase = timedelta(microseconds=draw(st.sampled_from([0, 1, 500_000, 999_999])))
    lookahead = interval + timedelta(seconds=draw(st.sampled_from([0, 1, 59, 60, 61, 150])))
    if kind == "cron":
        when = draw(st.sampled_from(CRONS))
        start = change - timedelta(
            minutes=draw(st.integers(0, 150)), seconds=draw(st.integers(0, 59))
        )
        ticks = 180 // int(interval.total_seconds() // 60) + 1
    else:
        start = change - timedelta(seconds=draw(st.integers(0, 3600)))
        ticks = draw(st.integers(2, 4))
        if kind == "rate":
            when = f"rate({draw(st.sampled_from(RATES))} seconds)"
        else:
            span = interval * (ticks - 1)
            offset = draw(st.integers(0, int(span.total_seconds() * 1_000_000)))
            at = start + phase + timedelta(microseconds=offset)
            when = f"at({at.isoformat()})"
    return Case(when, zone, start + phase, interval, ticks, lookahead, draw(st.integers(0, 2**32)))


def simulate(root: Path, case: Case) -> tuple[list[datetime], list[Occurrence]]:
    """Ticks and deliveries in time order; the occurrences run, and those planned."""
    rng = random.Random(case.seed)
    job = command_job(case.when, ["true"], timezone=case.zone, max_number_executions=0)
    place(root, "j.json", job, case.placed)
    clock = FakeClock(case.start)
    recorder = Recorder(case.lookahead)
    events: list[tuple[datetime, float, int, Occurrence | None]] = [
        (case.start + case.interval * k, rng.random(), k, None) for k in range(case.ticks)
    ]
    heapq.heapify(events)
    ran: list[datetime] = []
    order = case.ticks
    with Engine(LocalStore(root), default_registry(), clock=clock, delivery=recorder) as engine:
        while events:
            moment, _, _, occurrence = heapq.heappop(events)
            if moment > case.end:
                break
            clock.now = moment
            if occurrence is None:
                planned_before = len(recorder.planned)
                report = engine.tick(moment)
                for fresh in recorder.planned[planned_before:]:
                    # Each planned occurrence lies in the tick's own window.
                    assert moment < fresh.at <= moment + case.lookahead, (fresh, moment)
                    copies = 2 if rng.random() < 0.3 else 1  # at least once, sometimes twice
                    for _ in range(copies):
                        late = timedelta(microseconds=rng.randrange(0, 999_000))
                        order += 1
                        heapq.heappush(events, (fresh.at + late, rng.random(), order, fresh))
                reports = [report]
            else:
                (delivered,) = engine.deliver([occurrence])
                assert delivered.outcome is not Delivered.EARLY
                reports = [delivered.report]
            for report in reports:
                assert report.store_errors == report.internal_errors == 0, report.events
                for event in report.events:
                    assert event.outcome not in (Outcome.MISSED, Outcome.CANCELLED), event
                    if event.outcome is Outcome.RAN:
                        assert event.scheduled is not None and event.lateness_ms is not None
                        assert event.lateness_ms >= 0  # never before its time
                        ran.append(event.scheduled)
    return ran, recorder.planned


def oracle(case: Case) -> list[datetime]:
    schedule = parse(case.when, case.zone)
    found = []
    for moment in schedule.iter_after(case.placed):
        if moment > case.end:
            break
        found.append(moment)
    return found


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_every_occurrence_in_the_union_of_the_windows_is_planned_and_runs_once(
    tmp_path_factory: pytest.TempPathFactory, case: Case
) -> None:
    root = tmp_path_factory.mktemp("store")
    ran, planned = simulate(root, case)
    expected = oracle(case)
    assert Counter(ran) == Counter(expected), (ran, expected)
    # Each occurrence after the first tick was planned ahead (the first tick's own is due).
    ahead = {o.at for o in planned}
    assert [t for t in expected if t > case.start and t not in ahead] == []
