"""A notice outlives its runner: an occurrence that ends owing a notice is written with a
claim held for it (``claim.telling``), released once the notice is out. A runner that dies
in between leaves that claim; a later tick finds it dead and sends the notice from it.

Real files and real notice commands; the clock is fake.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from helpers import FakeClock, dead_run, notices, notices_to, place, read_json, utc
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.engine.outcomes import Policies
from lambdacron.engine.report import Outcome
from lambdacron.engine.runner import Would, dry_run
from lambdacron.job import RunType, Telling
from lambdacron.jobfile import claim_to_json, load
from lambdacron.notify import Destination, NoticeKind, NoticeReason, parse_destination
from lambdacron.store import LocalStore

T = utc(2026, 6, 1, 18, 30)


def failing(marker: Path) -> dict[str, Any]:
    """A command that counts its runs in ``marker`` and fails."""
    return {
        "type": "command",
        "details": {"command": ["sh", "-c", f"echo run >> {marker}; exit 3"]},
    }


def telling_file(path: Path, seen: Path) -> dict[str, Any]:
    """A destination that records the job file as it stands while the notice is sent."""
    return {"command": ["sh", "-c", f"cat > /dev/null; cat {path} >> {seen}; echo >> {seen}"]}


def runs(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T)


@pytest.fixture
def engine(root: Path, clock: FakeClock) -> Iterator[Engine]:
    with Engine(
        LocalStore(root), default_registry(), clock=clock, workers=2, rng=random.Random(7)
    ) as e:
        yield e


def held_for(path: Path, seen: Path) -> list[dict[str, Any] | None]:
    """The claim the job file held at each notice, as the destination saw the file."""
    text = seen.read_text() if seen.exists() else ""
    documents = []
    decoder = json.JSONDecoder()
    position = 0
    while (start := text.find("{", position)) >= 0:
        document, position = decoder.raw_decode(text, start)
        documents.append(document)
    return [d.get("claim") for d in documents]


def watched(root: Path, tmp_path: Path, **fields: Any) -> tuple[Path, Path]:
    """A failing daily job at 18:30 whose destination records the job file as it stands
    while the notice is sent: the job's path, and where the destination writes."""
    seen, path = tmp_path / "seen", root / "o.json"
    document = {
        "when": "30 18 * * *",
        "run": failing(tmp_path / "m"),
        "on_failure": telling_file(path, seen),
        **fields,
    }
    place(root, "o.json", document, T - timedelta(days=1) if "claim" not in fields else T)
    return path, seen


class TestAnEndOwingANoticeHoldsItsClaimUntilTheNoticeIsOut:
    """Each kind of end that owes a notice: the file holds the claim while the notice is
    sent, and not after."""

    def test_a_failed_run(
        self, engine: Engine, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        path, seen = watched(root, tmp_path)
        report = engine.tick(T)
        assert (report.ran, report.failed, report.notices) == (1, 1, 1)
        (claim,) = held_for(path, seen)
        assert claim is not None and claim["telling"] == {
            "reason": "failed",
            "attempts": 1,
            "to": telling_file(path, seen),
        }
        assert claim["scheduled"] == "2026-06-01T18:30:00Z"
        state = read_json(path)
        assert "claim" not in state and state["last_result"]["status"] == "failed"
        assert state["execution_count"] == 1

    def test_a_missed_occurrence(
        self, engine: Engine, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        path, seen = watched(root, tmp_path, deadline_seconds=60)
        clock.now = T + timedelta(hours=1)
        report = engine.tick(clock.now)
        assert (report.missed, report.notices) == (1, 1)
        (claim,) = held_for(path, seen)
        assert claim is not None and claim["telling"] == {
            "reason": "missed",
            "attempts": 0,
            "to": telling_file(path, seen),
        }
        assert "claim" not in read_json(path) and runs(tmp_path / "m") == 0

    def test_an_interrupted_run(self, root: Path, tmp_path: Path, clock: FakeClock) -> None:
        path, seen = watched(root, tmp_path, **dead_run(T))
        clock.now = T + timedelta(minutes=11)
        with Engine(LocalStore(root), default_registry(), clock=clock) as e:
            report = e.tick(clock.now)
        assert (report.interrupted, report.notices) == (1, 1)
        (claim,) = held_for(path, seen)
        assert claim is not None and claim["telling"] == {
            "reason": "interrupted",
            "attempts": 1,
            "to": telling_file(path, seen),
        }
        assert claim["host"] != "elsewhere"  # this runner's, not the dead one's
        state = read_json(path)
        assert "claim" not in state and state["last_result"]["status"] == "interrupted"

    def test_a_retry_dropped_with_its_schedule(
        self, engine: Engine, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        path, seen = watched(root, tmp_path, retry={"attempts": 3, "backoff_seconds": 600})
        assert engine.tick(T).retried == 1  # attempt 1 failed; attempt 2 waits
        document = read_json(path)
        document["when"] = "0 9 * * *"  # the user moves the job before its retry
        place(root, "o.json", document, T + timedelta(seconds=1))
        clock.now = T + timedelta(minutes=1)
        report = engine.tick(clock.now)
        assert [e.outcome for e in report.events][:2] == [Outcome.CANCELLED, Outcome.NOTIFIED]
        (claim,) = held_for(path, seen)
        assert claim is not None and claim["telling"] == {
            "reason": "failed",
            "attempts": 1,
            "to": telling_file(path, seen),
        }
        state = read_json(path)
        assert "claim" not in state and "retry_pending" not in state
        assert state["scheduled_from"]["since"] == "2026-06-01T18:30:01Z"
        assert runs(tmp_path / "m") == 1

    def test_no_claim_is_held_when_nobody_is_named_to_hear(
        self, engine: Engine, root: Path, tmp_path: Path
    ) -> None:
        path = place(root, "o.json", {"when": "30 18 * * *", "run": failing(tmp_path / "m")})
        assert engine.tick(T).failed == 1
        assert "claim" not in read_json(path)


class TestAClaimLeftForANotice:
    """What a runner that died before its notice was out leaves, and what ticks do with it."""

    @staticmethod
    def left(root: Path, tmp_path: Path, deadline: timedelta) -> Path:
        told = tmp_path / "told.jsonl"
        at = "2026-06-01T18:30:00Z"
        claim = {
            "id": "c1",
            "scheduled": at,
            "host": "elsewhere",
            "pid": 1,
            "started": "2026-06-01T18:30:05Z",
            "deadline": (T + deadline).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "attempt": 2,
            "telling": {"reason": "failed", "attempts": 2},
        }
        document = {
            "when": "* * * * *",
            "run": failing(tmp_path / "m"),
            "on_failure": notices_to(told),
            "execution_count": 1,
            "last_scheduled": at,
            "last_result": {"status": "failed", "exit_code": 3, "attempt": 2, "error": "boom"},
            "claim": claim,
        }
        return place(root, "o.json", document, T)

    def test_while_it_may_live_it_holds_the_job_and_says_why(
        self, engine: Engine, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        path = self.left(root, tmp_path, timedelta(minutes=3))
        clock.now = T + timedelta(minutes=1)
        report = engine.tick(clock.now)
        assert (report.ran, report.notices) == (0, 0)
        (event,) = [e for e in report.events if e.outcome is Outcome.RUNNING]
        assert event.message == "its failure notice is being sent"
        assert read_json(path)["claim"]["id"] == "c1"
        (planned,) = dry_run(engine, clock.now).planned
        assert (planned.would, planned.reason) == (Would.SKIP, "its failure notice is being sent")

    def test_once_dead_the_notice_is_sent_once_the_claim_released_and_the_job_runs_on(
        self, engine: Engine, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        path = self.left(root, tmp_path, timedelta(minutes=3))
        clock.now = T + timedelta(minutes=4)
        report = engine.tick(clock.now)
        told, then = notices(tmp_path / "told.jsonl")
        assert (told["reason"], told["attempts"]) == ("failed", 2)
        assert told["occurrence"] == "2026-06-01T18:30:00Z"
        assert told["last_result"]["error"] == "boom"
        # Released, then decided again: the occurrence of 18:34 runs (and fails, and tells).
        assert report.ran == 1 and runs(tmp_path / "m") == 1
        assert (then["occurrence"], then["attempts"]) == ("2026-06-01T18:34:00Z", 1)
        state = read_json(path)
        assert "claim" not in state and state["last_scheduled"] == "2026-06-01T18:34:00Z"
        clock.now = T + timedelta(minutes=4, seconds=30)
        engine.tick(clock.now)  # nothing left to tell
        assert len(notices(tmp_path / "told.jsonl")) == 2

    def test_a_dry_run_says_it_would_tell(
        self, engine: Engine, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        path = self.left(root, tmp_path, timedelta(minutes=3))
        before = path.read_bytes()
        clock.now = T + timedelta(minutes=4)
        plan = dry_run(engine, clock.now)
        assert [p.would for p in plan.planned] == [Would.TELL, Would.RUN]
        assert "stopped before sending its failed notice" in plan.planned[0].reason
        assert path.read_bytes() == before and notices(tmp_path / "told.jsonl") == []

    def test_a_dry_run_while_it_may_live_says_why_as_the_tick_does(
        self, engine: Engine, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        self.left(root, tmp_path, timedelta(minutes=3))
        clock.now = T + timedelta(minutes=1)
        (planned,) = dry_run(engine, clock.now).planned
        assert (planned.would, planned.reason) == (Would.SKIP, "its failure notice is being sent")

    def test_a_run_by_hand_tells_first(
        self, engine: Engine, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        self.left(root, tmp_path, timedelta(minutes=3))
        clock.now = T + timedelta(minutes=4)
        engine.run_now("o.json")
        assert [n["reason"] for n in notices(tmp_path / "told.jsonl")] == ["failed"]
        assert runs(tmp_path / "m") == 1


class TestTheRecord:
    @pytest.mark.parametrize(
        ("to", "destination"),
        [
            (None, None),
            ({"command": ["mail", "ops"]}, Destination(NoticeKind.COMMAND, ("mail", "ops"))),
        ],
    )
    def test_a_telling_claim_round_trips(
        self, to: dict[str, Any] | None, destination: Destination | None
    ) -> None:
        document = {
            "when": "* * * * *",
            "run": {"type": "command", "details": {"command": ["true"]}},
        }
        telling: dict[str, Any] = {"reason": "missed", "attempts": 0}
        if to is not None:
            telling["to"] = to
        claim = {**dead_run(T)["claim"], "telling": telling}
        job, problems, _ = load("o.json", json.dumps({**document, "claim": claim}).encode())
        assert problems == [] and job is not None and job.state.claim is not None
        assert job.state.claim.telling == Telling(NoticeReason.MISSED, 0, destination)
        assert claim_to_json(job.state.claim) == claim

    @pytest.mark.parametrize(
        "telling",
        [
            "failed",
            {"reason": "lost", "attempts": 1},
            {"reason": "failed"},
            {"reason": "failed", "attempts": -1},
            {"reason": "failed", "attempts": True},
            {"reason": ["failed"], "attempts": 1},
            {"reason": "failed", "attempts": 1, "to": {"sns": "alerts"}},
            {"reason": "failed", "attempts": 1, "to": None},
        ],
    )
    def test_a_damaged_one_is_reported_like_any_damaged_claim(self, telling: Any) -> None:
        document = {
            "when": "* * * * *",
            "run": {"type": "command", "details": {"command": ["true"]}},
        }
        claim = {**dead_run(T)["claim"], "telling": telling}
        job, problems, _ = load("o.json", json.dumps({**document, "claim": claim}).encode())
        assert job is None
        assert [str(p) for p in problems] == [
            "claim: is damaged; remove the claim field to release the job"
        ]


class TestAnEditThatBreaksTheJobDuringTheRun:
    """The user's edit during the run is kept, the runner's fields merged in, even when it
    is no valid job: the claim held for the notice must not outlive the notice there, or
    the tick that finds the file fixed takes it for a dead one and tells again."""

    @pytest.mark.parametrize("broken", [{"when": "bogus"}, {"timeout_seconds": -1}])
    def test_the_notice_is_sent_once_and_no_claim_is_left(
        self,
        engine: Engine,
        root: Path,
        tmp_path: Path,
        clock: FakeClock,
        broken: dict[str, Any],
    ) -> None:
        told, path = tmp_path / "told.jsonl", root / "o.json"
        edit = (
            "import json, os, sys\n"
            f"p = {str(path)!r}\n"
            "d = json.load(open(p))\n"
            f"d.update({broken!r})\n"
            "open(p + '.t', 'w').write(json.dumps(d))\n"
            "os.replace(p + '.t', p)\n"
            "sys.exit(3)\n"
        )
        document = {
            "when": "30 18 * * *",
            "run": {"type": "python", "details": {"script": edit}},
            "on_failure": notices_to(told),
        }
        place(root, "o.json", document, T - timedelta(days=1))
        report = engine.tick(T)
        assert (report.failed, report.notices) == (1, 1)
        state = read_json(path)
        assert "claim" not in state and state["last_result"]["status"] == "failed"
        # The user repairs the file; the next ticks have nothing to tell.
        place(root, "o.json", {**state, **document}, T + timedelta(seconds=5))
        clock.now = T + timedelta(minutes=10)
        engine.tick(clock.now)
        with Engine(LocalStore(root), default_registry(), clock=clock) as other:
            other.tick(clock.now)
        assert [n["reason"] for n in notices(told)] == ["failed"]
        assert "claim" not in read_json(path)


class TestARunnerThatRunsNoCommands:
    """``LAMBDACRON_ALLOWED_TYPES=lambda`` keeps whoever writes job files from running
    commands on the runner: a command named as a destination by a job file (its
    ``on_failure``, or a claim's ``telling.to``) is not run either. The runner's own
    default is the operator's, and is."""

    @staticmethod
    def lambda_only(root: Path, clock: FakeClock, policies: Policies | None = None) -> Engine:
        registry = default_registry({RunType.LAMBDA})
        # Its runs can have no time at all, so each ends in error without reaching AWS.
        return Engine(LocalStore(root), registry, clock=clock, policies=policies, max_run_seconds=1)

    def test_a_job_files_command_destination_is_not_run(
        self, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        marker = tmp_path / "ran"
        document = {
            "when": "30 18 * * *",
            "run": {"type": "lambda", "details": {"function_name": "nowhere"}},
            "on_failure": {"command": ["touch", str(marker)]},
        }
        path = place(root, "o.json", document, T - timedelta(days=1))
        with self.lambda_only(root, clock) as engine:
            report = engine.tick(T)
        assert (report.failed, report.notices, report.notices_failed) == (1, 0, 1)
        (event,) = [e for e in report.events if e.outcome is Outcome.NOTICE_FAILED]
        assert "LAMBDACRON_ALLOWED_TYPES" in event.message
        assert not marker.exists() and "claim" not in read_json(path)

    def test_nor_a_command_written_into_a_claim(
        self, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        marker = tmp_path / "ran"
        claim = {
            **dead_run(T)["claim"],
            "telling": {
                "reason": "failed",
                "attempts": 1,
                "to": {"command": ["touch", str(marker)]},
            },
        }
        document = {
            "when": "30 18 * * *",
            "run": {"type": "lambda", "details": {"function_name": "nowhere"}},
            "last_scheduled": "2026-06-01T18:30:00Z",
            "claim": claim,
        }
        path = place(root, "o.json", document, T)
        clock.now = T + timedelta(minutes=11)
        with self.lambda_only(root, clock) as engine:
            report = engine.tick(clock.now)
        assert report.notices_failed == 1 and not marker.exists()
        assert "claim" not in read_json(path)

    def test_the_runners_own_default_command_is_run(
        self, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        told = tmp_path / "told.jsonl"
        document = {
            "when": "30 18 * * *",
            "run": {"type": "lambda", "details": {"function_name": "nowhere"}},
        }
        place(root, "o.json", document, T - timedelta(days=1))
        default = parse_destination(notices_to(told))
        with self.lambda_only(root, clock, Policies(on_failure=default)) as engine:
            report = engine.tick(T)
        assert (report.failed, report.notices) == (1, 1)
        assert [n["reason"] for n in notices(told)] == ["failed"]
