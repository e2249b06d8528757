"""The engine's file cache: a job taken from it is the job the store holds.

The engine keeps the jobs it read or wrote, decoded, by version, and takes a listed job
from there instead of reading and validating it again. The oracle here is the store
itself: every job the engine keeps is checked against a fresh decode of the bytes the
store holds at that version, over random sequences of ticks, runs that fail and are
retried, runs by hand, and user edits between ticks.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import FakeClock, command_job, place, utc
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.engine.index import FileCache
from lambdacron.jobfile import JobFile, load
from lambdacron.store import LocalStore, Store

T = utc(2026, 6, 1, 18, 0)


class CheckedCache(FileCache):
    """A FileCache that decodes the store's bytes at every version it is asked to keep."""

    def __init__(self, store: Store, files: int = 4000) -> None:
        super().__init__(files=files)
        self.store = store
        self.checked = 0
        self.recalled = 0
        self.mismatches: list[str] = []

    def remember(self, file: JobFile, size: int, *, ran: bool = False) -> None:
        doc = self.store.read(file.key)
        if doc.version.token == file.version.token:
            job, problems, document = load(file.key, doc.body)
            assert not problems, problems
            self.checked += 1
            if document != file.document:
                self.mismatches.append(f"{file.key}: document {file.document} != {document}")
            if job != file.job:
                self.mismatches.append(f"{file.key}: job {file.job} != {job}")
            assert size == len(doc.body)
        super().remember(file, size, ran=ran)

    def recall(self, key: str, version: Any) -> JobFile | None:
        kept = super().recall(key, version)
        self.recalled += kept is not None
        return kept


def _job(kind: str) -> dict[str, Any]:
    if kind == "ok":
        return command_job("* * * * *", ["true"], customer={"id": 7, "tags": ["a", "é"]})
    if kind == "fails":
        return command_job("*/2 * * * *", ["false"], retry={"attempts": 3, "backoff_seconds": 5})
    if kind == "limited":
        return command_job("* * * * *", ["true"], max_number_executions=2)
    if kind == "seconds":
        return command_job("rate(20 seconds)", ["true"], history_limit=3)
    if kind == "zone":
        return command_job("30 * * * *", ["true"], timezone="Australia/Lord_Howe")
    return command_job(f"at({(T + timedelta(minutes=3)).isoformat()[:19]})", ["true"])


KINDS = ["ok", "fails", "limited", "seconds", "zone", "once"]
Step = tuple[str, int]


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["tick", "tick", "edit", "schedule", "run", "delete"]),
            st.integers(0, len(KINDS) - 1),
        ),
        min_size=3,
        max_size=12,
    )
)
def test_every_job_the_engine_keeps_decodes_from_the_bytes_at_its_version(
    tmp_path_factory: pytest.TempPathFactory, steps: list[Step]
) -> None:
    root = tmp_path_factory.mktemp("jobs")
    clock = FakeClock(T)
    store = LocalStore(root)
    cache = CheckedCache(store)
    for i, kind in enumerate(KINDS):
        place(root, f"{kind}.json", _job(kind), T - timedelta(minutes=1, seconds=i))
    with Engine(store, default_registry(), clock=clock, workers=2, rng=random.Random(3)) as e:
        e.files = cache
        e.tick(clock.now)
        for action, which in steps:
            key = f"{KINDS[which]}.json"
            path = root / key
            if action == "tick":
                clock.advance(seconds=45)
                e.tick(clock.now)
            elif action == "run" and path.exists():
                e.run_now(key)
            elif action == "delete" and path.exists():
                path.unlink()
            elif action in ("edit", "schedule") and path.exists():
                # A user's edit: a payload field, or the schedule itself.
                document = json.loads(path.read_text())
                if action == "edit":
                    document["note"] = f"edited at {clock.now.isoformat()}"
                else:
                    document["when"] = "*/3 * * * *"
                place(root, key, document, clock.now)
        clock.advance(minutes=2)
        e.tick(clock.now)
    assert cache.mismatches == []
    assert cache.checked > 0


def test_a_listed_job_kept_by_the_engine_is_not_read_again(root: Path) -> None:
    clock = FakeClock(T)
    store = LocalStore(root)
    cache = CheckedCache(store)
    place(root, "a.json", command_job("* * * * *", ["true"]), T - timedelta(minutes=1))
    with Engine(store, default_registry(), clock=clock, workers=1) as e:
        e.files = cache
        for _ in range(3):
            clock.advance(minutes=1)
            assert e.tick(clock.now).ran == 1
    # The first tick reads the job; each later one takes it as the last write left it.
    assert cache.recalled == 2
    assert cache.mismatches == []


def test_an_edit_that_keeps_nothing_of_the_version_is_read_afresh(root: Path) -> None:
    clock = FakeClock(T)
    store = LocalStore(root)
    place(root, "a.json", command_job("* * * * *", ["true"], note="one"), T - timedelta(minutes=1))
    with Engine(store, default_registry(), clock=clock, workers=1) as e:
        clock.advance(minutes=1)
        e.tick(clock.now)
        document = json.loads((root / "a.json").read_text())
        document["note"] = "two"
        document["run"]["details"]["command"] = ["false"]
        place(root, "a.json", document, clock.now)
        clock.advance(minutes=1)
        e.tick(clock.now)
    written = json.loads((root / "a.json").read_text())
    assert written["note"] == "two"
    assert written["last_result"]["status"] == "failed"


class TestBounds:
    def test_each_part_keeps_at_most_its_share_of_files_the_least_recently_used_go(
        self,
    ) -> None:
        cache = FileCache(files=8, size_bytes=10_000)  # runs: 6, the rest: 2
        read = [_file(f"r{i}") for i in range(5)]
        for file in read:
            cache.remember(file, 10)
        assert [cache.recall(f.key, f.version) is not None for f in read] == [0, 0, 0, 1, 1]
        ran = [_file(f"w{i}") for i in range(7)]
        for file in ran:
            cache.remember(file, 10, ran=True)
        assert [cache.recall(f.key, f.version) is not None for f in ran] == [0, 1, 1, 1, 1, 1, 1]
        assert len(cache) == 8

    def test_a_pass_over_many_jobs_read_once_keeps_the_jobs_that_run(self) -> None:
        cache = FileCache(files=8, size_bytes=10_000)
        ran = [_file(f"w{i}") for i in range(6)]
        for file in ran:
            cache.remember(file, 10, ran=True)
        for i in range(100):
            cache.remember(_file(f"r{i}"), 10)
        assert all(cache.recall(f.key, f.version) is f for f in ran)

    def test_each_part_keeps_at_most_its_share_of_bytes_and_never_a_larger_body(self) -> None:
        cache = FileCache(files=100, size_bytes=400)  # runs: 300 bytes, the rest: 100
        cache.remember(_file("a"), 60, ran=True)
        cache.remember(_file("b"), 200, ran=True)
        cache.remember(_file("c"), 60, ran=True)  # 320 bytes: a goes
        assert cache.recall("a", _file("a").version) is None
        assert cache.recall("b", _file("b").version) is not None
        cache.remember(_file("b"), 301, ran=True)  # too large: the old b must not stay either
        assert cache.recall("b", _file("b").version) is None
        cache.remember(_file("d"), 101)
        assert cache.recall("d", _file("d").version) is None
        assert len(cache) == 1

    def test_a_file_is_recalled_only_at_its_version_and_from_the_part_it_was_last_put(
        self,
    ) -> None:
        cache = FileCache()
        cache.remember(_file("a", "v1"), 10)
        assert cache.recall("a", _file("a", "v2").version) is None
        assert cache.recall("a", _file("a", "v1").version) is not None
        cache.remember(_file("a", "v2"), 10, ran=True)
        cache.remember(_file("a", "v3"), 10)
        assert cache.recall("a", _file("a", "v2").version) is None
        assert len(cache) == 1
        cache.forget("a")
        assert len(cache) == 0


def _file(key: str, token: str = "v") -> JobFile:
    from lambdacron.store.base import Version

    body = json.dumps(command_job("* * * * *", ["true"])).encode()
    job, _, document = load(key, body)
    assert job is not None
    return JobFile(key, document, job, Version(token, 0.0))


def test_jobs_removed_or_renamed_by_others_leave_the_cache(tmp_path: Path) -> None:
    """In a long run where jobs come and go (added, run, renamed or removed by their
    owners), the cache holds the jobs the store holds, not every key it ever ran."""
    clock = FakeClock(T)
    store = LocalStore(tmp_path)
    place(tmp_path, "stays.json", command_job("* * * * *", ["true"]))
    with Engine(store, default_registry(), clock=clock) as engine:
        for minute in range(40):
            now = T + timedelta(minutes=minute)
            clock.now = now
            place(tmp_path, f"churn/{minute:03d}.json", command_job("* * * * *", ["true"]), now)
            engine.tick(now)
            gone = tmp_path / "churn" / f"{minute:03d}.json"
            if minute % 2:
                gone.unlink()
            else:
                gone.rename(gone.with_name(f"renamed-{minute:03d}.json"))
            for renamed in sorted((tmp_path / "churn").glob("renamed-*.json"))[:-1]:
                renamed.unlink()
        engine.tick(T + timedelta(minutes=40))
        held = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")}
        held = {k for k in held if not k.startswith(".")}
        assert len(held) <= 3
        assert len(engine.files) <= len(held)
