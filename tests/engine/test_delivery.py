"""Planning ahead and delivering at the second: what a tick plans, and what a delivery runs.

A delivery is a tick for one job at one moment: it reads the job afresh and runs what a
tick then would, unless the schedule changed since the plan. The claim keeps every
occurrence single, whoever delivers it and however often.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cronsim import CronSim
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import FakeClock, Recorder, append_job, place, read_json, utc
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.engine.delivery import Delivered, Occurrence
from lambdacron.engine.report import Outcome
from lambdacron.store import LocalStore

NOW = utc(2026, 6, 1, 12)
PLACED = utc(2026, 6, 1, 11)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(timedelta(minutes=2))


@pytest.fixture
def engine(root: Path, clock: FakeClock, recorder: Recorder) -> Iterator[Engine]:
    with Engine(
        LocalStore(root), default_registry(), clock=clock, workers=4, delivery=recorder
    ) as e:
        yield e


def runs(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def planned_for(recorder: Recorder, key: str) -> list[datetime]:
    return sorted(o.at for o in recorder.planned if o.key == key)


class TestPlanning:
    def test_a_tick_plans_each_occurrence_up_to_its_lookahead(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder
    ) -> None:
        place(root, "fast.json", append_job("rate(30 seconds)", tmp_path / "f", "x"), PLACED)
        place(root, "cron.json", append_job("1 12 * * *", tmp_path / "c", "x"), PLACED)
        place(root, "far.json", append_job("0 13 * * *", tmp_path / "x", "x"), PLACED)
        report = engine.tick(NOW)
        assert planned_for(recorder, "fast.json") == [
            NOW + timedelta(seconds=30 * i) for i in range(1, 5)
        ]
        assert planned_for(recorder, "cron.json") == [utc(2026, 6, 1, 12, 1)]
        assert planned_for(recorder, "far.json") == []
        assert report.planned == 5
        # The due occurrence (12:00) runs now; each planned one waits for its delivery.
        assert (report.ran, runs(tmp_path / "f"), runs(tmp_path / "c")) == (1, ["x"], [])

    def test_an_at_job_keeps_its_seconds(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder
    ) -> None:
        place(root, "o.json", append_job("at(2026-06-01T12:00:07.5)", tmp_path / "o", "x"))
        engine.tick(NOW)
        assert planned_for(recorder, "o.json") == [NOW + timedelta(seconds=7.5)]

    def test_disabled_and_used_up_jobs_are_not_planned_and_runs_left_bound_the_plan(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder
    ) -> None:
        job = append_job("rate(10 seconds)", tmp_path / "r", "x")
        place(root, "off.json", {**job, "enabled": False}, NOW)
        place(root, "two.json", {**job, "max_number_executions": 2}, NOW)
        place(root, "done.json", {**job, "max_number_executions": 1, "execution_count": 1})
        engine.tick(NOW)
        assert planned_for(recorder, "off.json") == planned_for(recorder, "done.json") == []
        assert planned_for(recorder, "two.json") == [
            NOW + timedelta(seconds=10 * i) for i in (1, 2)
        ]

    def test_a_queue_that_refuses_the_plan_is_reported_and_costs_nothing_else(
        self, root: Path, clock: FakeClock, tmp_path: Path
    ) -> None:
        place(root, "r.json", append_job("rate(10 seconds)", tmp_path / "r", "x"), PLACED)
        place(root, "due.json", append_job("0 12 * * *", tmp_path / "d", "x"), PLACED)
        failing = Recorder(timedelta(minutes=1), fail=True)
        with Engine(LocalStore(root), default_registry(), clock=clock, delivery=failing) as e:
            report = e.tick(NOW)
        assert report.store_errors == 1 and report.planned == 0
        assert any(
            "cannot plan" in ev.message and "queue is down" in ev.message for ev in report.events
        )
        assert runs(tmp_path / "d") == ["x"]  # the due job ran all the same

    def test_a_job_the_index_vouches_for_is_read_again_once_inside_the_lookahead(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
    ) -> None:
        place(root, "later.json", append_job("5 12 * * *", tmp_path / "l", "x"), PLACED)
        engine.tick(NOW)  # 12:05 is past the two-minute lookahead
        assert planned_for(recorder, "later.json") == []
        clock.advance(minutes=4)
        engine.tick(NOW + timedelta(minutes=4))
        assert planned_for(recorder, "later.json") == [utc(2026, 6, 1, 12, 5)]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    minute=st.sampled_from(["*", "*/2", "*/7", "3-59/5", "0,1,2,30"]),
    hour=st.sampled_from(["*", "12", "11-13", "*/3"]),
    lookahead=st.integers(1, 3 * 3600),
    offset=st.integers(0, 86_400),
)
def test_the_plan_is_every_occurrence_in_the_lookahead_by_an_independent_evaluator(
    tmp_path_factory: pytest.TempPathFactory, minute: str, hour: str, lookahead: int, offset: int
) -> None:
    root = tmp_path_factory.mktemp("store")
    now = NOW + timedelta(seconds=offset)
    when = f"{minute} {hour} * * *"
    place(root, "j.json", append_job(when, root / "out", "x"), now - timedelta(seconds=1))
    recorder = Recorder(timedelta(seconds=lookahead))
    with Engine(LocalStore(root), default_registry(), clock=FakeClock(now), delivery=recorder) as e:
        e.tick(now)
    horizon = now + timedelta(seconds=lookahead)
    expected = []
    for moment in CronSim(when, now):
        if moment > horizon:
            break
        expected.append(moment)
    assert planned_for(recorder, "j.json") == expected


class TestDelivery:
    def test_a_delivery_runs_the_occurrence_once_at_its_time_and_records_lateness(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
    ) -> None:
        job = append_job("at(2026-06-01T12:00:30)", tmp_path / "o", "x", max_number_executions=0)
        path = place(root, "o.json", job)
        engine.tick(NOW)
        (occurrence,) = recorder.planned
        clock.now = occurrence.at + timedelta(milliseconds=250)
        (first,) = engine.deliver([occurrence])
        assert first.outcome is Delivered.RAN
        assert runs(tmp_path / "o") == ["x"]
        result = read_json(path)["last_result"]
        assert result["lateness_ms"] == 250
        (event,) = [ev for ev in first.report.events if ev.outcome is Outcome.RAN]
        assert event.lateness_ms == 250 and first.report.lateness_ms == [250]
        # The same message again (an at-least-once queue, an overlapping plan): nothing.
        again = engine.deliver([occurrence, occurrence])
        assert [d.outcome for d in again] == [Delivered.NOTHING, Delivered.NOTHING]
        assert runs(tmp_path / "o") == ["x"]

    def test_nothing_runs_before_its_time(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
    ) -> None:
        path = place(root, "r.json", append_job("rate(20 seconds)", tmp_path / "r", "x"), NOW)
        engine.tick(NOW)
        before = path.read_bytes()
        occurrence = recorder.planned[0]
        clock.now = occurrence.at - timedelta(milliseconds=1)
        (early,) = engine.deliver([occurrence])
        assert early.outcome is Delivered.EARLY
        assert path.read_bytes() == before and runs(tmp_path / "r") == []

    def test_a_schedule_edited_after_the_plan_cancels_the_planned_run(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
    ) -> None:
        path = place(root, "r.json", append_job("rate(20 seconds)", tmp_path / "r", "x"), NOW)
        engine.tick(NOW)
        document = read_json(path)
        path.write_text(json.dumps({**document, "when": "rate(1 hour)"}))
        clock.now = recorder.planned[0].at
        (delivered,) = engine.deliver([recorder.planned[0]])
        assert delivered.outcome is Delivered.STALE
        assert [ev.outcome for ev in delivered.report.events] == [Outcome.CANCELLED]
        assert runs(tmp_path / "r") == []

    def test_an_edit_of_anything_but_the_schedule_keeps_the_planned_run(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
    ) -> None:
        path = place(root, "r.json", append_job("rate(20 seconds)", tmp_path / "r", "x"), NOW)
        engine.tick(NOW)
        path.write_text(json.dumps({**read_json(path), "note": "the customer called"}))
        clock.now = recorder.planned[0].at
        (delivered,) = engine.deliver([recorder.planned[0]])
        assert delivered.outcome is Delivered.RAN
        assert read_json(path)["note"] == "the customer called"

    def test_a_job_deleted_after_the_plan_is_not_run(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
    ) -> None:
        path = place(root, "r.json", append_job("rate(20 seconds)", tmp_path / "r", "x"), NOW)
        engine.tick(NOW)
        path.unlink()
        clock.now = recorder.planned[0].at
        (delivered,) = engine.deliver([recorder.planned[0]])
        assert delivered.outcome is Delivered.STALE
        assert not path.exists() and runs(tmp_path / "r") == []

    def test_a_delivery_after_the_next_tick_ran_it_runs_nothing(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
    ) -> None:
        place(root, "o.json", append_job("at(2026-06-01T12:00:30)", tmp_path / "o", "x"))
        engine.tick(NOW)
        (lost,) = recorder.planned  # never delivered in time
        clock.now = NOW + timedelta(minutes=1)
        report = engine.tick(clock.now)  # the catch-up
        assert report.ran == 1
        (late,) = engine.deliver([lost])
        assert late.outcome is Delivered.STALE  # used up and deleted: nothing left to run
        assert runs(tmp_path / "o") == ["x"]

    def test_a_late_delivery_runs_the_latest_occurrence_once(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
    ) -> None:
        path = place(root, "r.json", append_job("rate(20 seconds)", tmp_path / "r", "x"), NOW)
        engine.tick(NOW)
        first, second = recorder.planned[:2]
        clock.now = second.at + timedelta(seconds=1)
        outcomes = [d.outcome for d in engine.deliver([first, second])]
        assert sorted(o.value for o in outcomes) == ["nothing", "ran"]
        assert runs(tmp_path / "r") == ["x"]
        assert read_json(path)["last_scheduled"] == "2026-06-01T12:00:40Z"

    def test_many_engines_delivering_one_occurrence_run_it_once(
        self, root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
    ) -> None:
        place(root, "o.json", append_job("at(2026-06-01T12:00:30)", tmp_path / "o", "x"))
        engines = [
            Engine(LocalStore(root), default_registry(), clock=clock, delivery=recorder)
            for _ in range(4)
        ]
        try:
            engines[0].tick(NOW)
            (occurrence,) = recorder.planned
            clock.now = occurrence.at
            barrier = threading.Barrier(len(engines))
            outcomes: list[Delivered] = []

            def deliver(engine: Engine) -> None:
                barrier.wait()
                outcomes.extend(d.outcome for d in engine.deliver([occurrence] * 3))

            threads = [threading.Thread(target=deliver, args=(e,)) for e in engines]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for engine in engines:
                engine.close()
        assert runs(tmp_path / "o") == ["x"]
        assert outcomes.count(Delivered.RAN) == 1 and len(outcomes) == 12

    def test_a_store_that_fails_the_read_asks_for_the_delivery_again(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
    ) -> None:
        path = place(root, "o.json", append_job("at(2026-06-01T12:00:30)", tmp_path / "o", "x"))
        engine.tick(NOW)
        (occurrence,) = recorder.planned
        clock.now = occurrence.at
        aside = path.rename(tmp_path / "aside.json")
        path.mkdir()  # a folder where the job was: the store cannot read it
        try:
            (delivered,) = engine.deliver([occurrence])
        finally:
            path.rmdir()
            aside.rename(path)
        assert delivered.outcome is Delivered.RETRY
        (again,) = engine.deliver([occurrence])
        assert again.outcome is Delivered.RAN and runs(tmp_path / "o") == ["x"]


@pytest.mark.parametrize("key", ["../x.json", "/abs.json", "a\x00.json", "x.txt"])
def test_a_delivery_for_a_key_no_job_can_have_is_invalid_not_retried(
    engine: Engine, clock: FakeClock, key: str
) -> None:
    (delivered,) = engine.deliver([Occurrence(NOW - timedelta(seconds=1), key, "f")])
    assert delivered.outcome is Delivered.NOTHING
    assert [e.outcome for e in delivered.report.events] == [Outcome.INVALID]
    assert delivered.report.store_errors == 0


class TestEditedBetweenPlanAndDelivery:
    """Whatever happens to the job between its plan and its delivery, the delivery does what
    a tick at that moment would, and says so when the plan no longer holds."""

    @pytest.mark.parametrize(
        "edit",
        ["delete", "when", "timezone", "disable", "replace_later_schedule"],
    )
    def test_a_planned_run_the_job_no_longer_has_is_cancelled_with_its_line(
        self,
        engine: Engine,
        root: Path,
        tmp_path: Path,
        recorder: Recorder,
        clock: FakeClock,
        edit: str,
    ) -> None:
        path = place(root, "r.json", append_job("rate(20 seconds)", tmp_path / "r", "x"), NOW)
        engine.tick(NOW)
        planned = recorder.planned[0]
        document = read_json(path)
        match edit:
            case "delete":
                path.unlink()
            case "when":
                path.write_text(json.dumps({**document, "when": "rate(1 hour)"}))
            case "timezone":
                path.write_text(json.dumps({**document, "timezone": "Europe/Berlin"}))
            case "disable":
                path.write_text(json.dumps({**document, "enabled": False}))
            case "replace_later_schedule":
                path.unlink()
                place(root, "r.json", append_job("rate(7 seconds)", tmp_path / "r", "new"))
        clock.now = planned.at
        (delivered,) = engine.deliver([planned])
        assert delivered.outcome is Delivered.STALE
        assert [(ev.outcome, ev.key) for ev in delivered.report.events] == [
            (Outcome.CANCELLED, "r.json")
        ]
        assert delivered.report.cancelled == 1 and runs(tmp_path / "r") == []

    def test_a_new_job_placed_under_the_key_before_the_occurrence_runs_as_placed(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
    ) -> None:
        path = place(root, "o.json", append_job("at(2026-06-01T12:00:30)", tmp_path / "o", "x"))
        engine.tick(NOW)
        (planned,) = recorder.planned
        path.unlink()
        new = append_job("at(2026-06-01T12:00:30)", tmp_path / "o", "new")
        place(root, "o.json", new, NOW + timedelta(seconds=10))
        clock.now = planned.at
        (delivered,) = engine.deliver([planned])
        assert delivered.outcome is Delivered.RAN and runs(tmp_path / "o") == ["new"]

    def test_a_new_job_placed_after_the_occurrence_is_not_run_for_it_by_a_late_delivery(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
    ) -> None:
        path = place(root, "d.json", append_job("1 12 * * *", tmp_path / "d", "x"), PLACED)
        engine.tick(NOW)
        (planned,) = recorder.planned
        path.unlink()
        place(root, "d.json", append_job("1 12 * * *", tmp_path / "d", "new"), planned.at)
        clock.now = planned.at + timedelta(seconds=5)
        (delivered,) = engine.deliver([planned])
        assert delivered.outcome is Delivered.NOTHING and runs(tmp_path / "d") == []

    def test_a_job_made_invalid_is_reported_and_left_as_it_is(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
    ) -> None:
        path = place(root, "r.json", append_job("rate(20 seconds)", tmp_path / "r", "x"), NOW)
        engine.tick(NOW)
        path.write_text('{"when": 5}')
        clock.now = recorder.planned[0].at
        (delivered,) = engine.deliver([recorder.planned[0]])
        assert delivered.outcome is Delivered.NOTHING
        assert [ev.outcome for ev in delivered.report.events] == [Outcome.INVALID]
        assert path.read_text() == '{"when": 5}' and runs(tmp_path / "r") == []

    def test_a_delivery_past_the_deadline_records_the_occurrence_missed_once(
        self, engine: Engine, root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
    ) -> None:
        job = append_job("at(2026-06-01T12:00:30)", tmp_path / "o", "x", deadline_seconds=5)
        path = place(root, "o.json", job, PLACED)
        engine.tick(NOW)
        (planned,) = recorder.planned
        clock.now = planned.at + timedelta(seconds=5, milliseconds=1)
        (delivered,) = engine.deliver([planned])
        assert [ev.outcome for ev in delivered.report.events] == [Outcome.MISSED]
        assert read_json(path)["last_result"]["status"] == "missed"
        # Neither the duplicate delivery nor the next tick runs it after all.
        (again,) = engine.deliver([planned])
        clock.advance(minutes=1)
        assert again.outcome is Delivered.NOTHING and engine.tick(clock.now).ran == 0
        assert runs(tmp_path / "o") == []


class _LongestBackoff(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def test_a_retry_beyond_the_lookahead_is_planned_by_the_tick_that_reaches_it(
    root: Path, tmp_path: Path, recorder: Recorder, clock: FakeClock
) -> None:
    # Planned at once, a retry hours ahead would hop through SQS's 15-minute delays; the
    # ticks plan it as they plan every occurrence, once it is inside their lookahead.
    script = f"open({str(tmp_path / 'o')!r}, 'a').write('x\\n'); raise SystemExit(1)"
    job = {
        "when": "at(2026-06-01T12:00:30)",
        "retry": {"attempts": 2, "backoff_seconds": 3600, "max_backoff_seconds": 3600},
        "run": {"type": "python", "details": {"script": script}},
    }
    path = place(root, "o.json", job, PLACED)
    store = LocalStore(root)
    with Engine(
        store, default_registry(), clock=clock, delivery=recorder, rng=_LongestBackoff()
    ) as engine:
        engine.tick(NOW)
        (planned,) = recorder.planned
        clock.now = planned.at
        engine.deliver([planned])
        retry_at = datetime.fromisoformat(read_json(path)["retry_pending"]["at"])
        assert retry_at == planned.at + timedelta(hours=1)
        assert recorder.planned == [planned]
        while clock.now < retry_at:  # the ticks on a one-minute interval
            clock.now = min(clock.now + timedelta(minutes=1), retry_at)
            engine.tick(clock.now)
    assert runs(tmp_path / "o") == ["x", "x"]
    assert [o.at for o in recorder.planned].count(retry_at) >= 1


def test_serves_timer_hands_an_occurrence_once_though_a_late_tick_plans_it_again() -> None:
    from lambdacron.engine.timer import TimerQueue

    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    clock = [now]
    queue = TimerQueue(timedelta(minutes=2), clock=lambda: clock[0])
    handed: list[Occurrence] = []
    done = threading.Event()

    def hand(occurrence: Occurrence) -> None:
        handed.append(occurrence)
        done.set()

    occurrence = Occurrence(now + timedelta(seconds=5), "k.json", "f")
    queue.plan([occurrence])
    queue.start(hand)
    clock[0] = now + timedelta(seconds=6)
    assert done.wait(5)
    # The next tick overran: it plans what the clock has passed, handed already.
    queue.plan([occurrence])
    done.clear()
    assert not done.wait(1.5)  # the dispatcher looks at the clock at least every second
    # Forgotten only once it is a lookahead past, so what is remembered stays bounded.
    clock[0] = now + timedelta(minutes=3)
    queue.plan([])
    assert not queue._handed
    queue.close()
    assert handed == [occurrence]


@pytest.mark.parametrize("edit", ["delete", "reschedule"])
def test_serves_timer_forgets_the_rest_of_a_plan_that_no_longer_stands(
    root: Path, tmp_path: Path, clock: FakeClock, edit: str
) -> None:
    # A deleted rate(1 seconds) job left a lookahead of planned runs in the timer, each read
    # and cancelled in its turn: 120 "cancelled" lines for one deletion.
    from lambdacron.engine.runner import _settle_plan
    from lambdacron.engine.timer import TimerQueue

    timer = TimerQueue(timedelta(minutes=2), clock=clock)
    path = place(root, "fast.json", append_job("rate(1 seconds)", tmp_path / "f", "f"), NOW)
    place(root, "other.json", append_job("rate(1 seconds)", tmp_path / "o", "o"), NOW)
    with Engine(LocalStore(root), default_registry(), clock=clock, delivery=timer) as engine:
        engine.tick(NOW)
        planned = sorted(timer._heap)
        assert len(planned) == 2 * 120
        if edit == "delete":
            path.unlink()
        else:
            path.write_text(json.dumps({**read_json(path), "when": "rate(1 hour)"}))
        first = next(o for o in planned if o.key == "fast.json")
        clock.now = first.at
        (delivered,) = engine.deliver([first])
        assert delivered.outcome is Delivered.STALE
        _settle_plan(timer, delivered)
    left = {o.key for o in timer._heap}
    assert left == {"other.json"} and len(timer) == 120  # the other job's plan stands
    assert timer._pending == set(timer._heap)
