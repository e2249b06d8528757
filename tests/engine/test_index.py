"""The index: unchanged jobs are not read again, and the index is only ever a cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import FakeClock, command_job, place, read_json, utc
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.engine.index import Index
from lambdacron.job import RunType
from lambdacron.store import LocalStore
from lambdacron.store.base import Document


class CountingStore(LocalStore):
    """The real local store, counting the job files it reads."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def read(self, key: str) -> Document:
        self.reads.append(key)
        return super().read(key)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "jobs"
    for i in range(50):
        place(path, f"daily/{i:02}.json", command_job("30 18 * * *", ["true"]), utc(2026, 1, 1))
    place(path, "hourly.json", command_job("0 * * * *", ["true"]), utc(2026, 1, 1))
    place(path, "bad.json", b"{", utc(2026, 1, 1))
    return path


def engine(store: LocalStore, **options: object) -> Engine:
    return Engine(store, default_registry(**options), clock=FakeClock(utc(2026, 1, 1)))  # type: ignore[arg-type]


def test_a_steady_tick_reads_only_due_jobs(root: Path) -> None:
    store = CountingStore(root)
    with engine(store) as e:
        cold = e.tick(utc(2026, 1, 1, 1, 0))
        assert (cold.seen, cold.ran, cold.invalid) == (52, 1, 1)
        assert len(store.reads) == 52  # a cold tick reads everything once
        store.reads.clear()
        steady = e.tick(utc(2026, 1, 1, 1, 30))
        assert store.reads == []  # nothing changed, nothing due: no job read
        assert (steady.seen, steady.ran, steady.invalid) == (52, 0, 1)  # still reported
        hourly = e.tick(utc(2026, 1, 1, 2, 0))
        # Due again, and unchanged since this engine wrote it: claimed from what it wrote.
        assert store.reads == [] and hourly.ran == 1
        assert read_json(root / "hourly.json")["execution_count"] == 2


def test_a_job_edited_since_our_write_is_read_before_its_claim(root: Path) -> None:
    store = CountingStore(root)
    with engine(store) as e:
        e.tick(utc(2026, 1, 1, 1, 0))
        document = read_json(root / "hourly.json")
        place(root, "hourly.json", {**document, "note": "edited"}, utc(2026, 1, 1, 1, 10))
        store.reads.clear()
        assert e.tick(utc(2026, 1, 1, 2, 0)).ran == 1
        assert store.reads == ["hourly.json"]
        assert read_json(root / "hourly.json")["note"] == "edited"


def test_a_changed_file_is_read_again(root: Path) -> None:
    store = CountingStore(root)
    with engine(store) as e:
        e.tick(utc(2026, 1, 1, 1, 0))
        store.reads.clear()
        place(root, "daily/07.json", command_job("45 1 * * *", ["true"]), utc(2026, 1, 1, 1, 1))
        report = e.tick(utc(2026, 1, 1, 1, 50))
        assert store.reads == ["daily/07.json"] and report.ran == 1


def test_a_cold_start_uses_the_persisted_index(root: Path) -> None:
    with engine(LocalStore(root)) as first:
        first.tick(utc(2026, 1, 1, 1, 0))
    store = CountingStore(root)
    with engine(store) as second:
        report = second.tick(utc(2026, 1, 1, 1, 30))
    assert store.reads == [] and report.invalid == 1


@pytest.mark.parametrize(
    "damage", [b"", b"{not json", b'{"format": 1, "entries": 5}', b'{"format": 99, "entries": {}}']
)
def test_a_damaged_index_costs_reads_never_runs(root: Path, damage: bytes) -> None:
    with engine(LocalStore(root)) as first:
        first.tick(utc(2026, 1, 1, 1, 0))
    (root / ".lambdacron" / "index.json").write_bytes(damage)
    store = CountingStore(root)
    with engine(store) as second:
        report = second.tick(utc(2026, 1, 1, 18, 31))
    assert len(store.reads) == 52  # rebuilt from the files
    assert report.ran == 51  # the 50 daily jobs and the hourly one, exactly as without it
    assert all(read_json(root / f"daily/{i:02}.json")["execution_count"] == 1 for i in range(50))


def test_an_index_saved_under_other_allowed_types_is_not_used(root: Path) -> None:
    with engine(LocalStore(root), allowed=[RunType.PYTHON]) as narrow:
        assert narrow.tick(utc(2026, 1, 1, 1, 0)).invalid == 52  # commands refused
    with engine(LocalStore(root)) as wide:
        assert wide.tick(utc(2026, 1, 1, 1, 0)).ran == 1


def test_the_persisted_form_round_trips() -> None:
    index = Index.from_bytes(None, "command")
    from lambdacron.engine.index import IndexEntry

    index.put("a.json", IndexEntry("t1", utc(2026, 1, 1), None))
    index.put("b.json", IndexEntry("t2", None, "when: bad"))
    again = Index.from_bytes(index.to_bytes(), "command")
    assert again.get("a.json") == index.get("a.json") and again.get("b.json") == index.get("b.json")
    assert len(Index.from_bytes(index.to_bytes(), "python")) == 0


def test_deleted_jobs_leave_the_index(root: Path) -> None:
    with engine(LocalStore(root)) as e:
        e.tick(utc(2026, 1, 1, 1, 0))
        assert e.index.get("hourly.json") is not None
        (root / "hourly.json").unlink()
        e.tick(utc(2026, 1, 1, 1, 1))
        assert e.index.get("hourly.json") is None and e.index.get("daily/00.json") is not None


def test_the_index_is_saved_after_real_change_not_every_tick(root: Path) -> None:
    saved = root / ".lambdacron" / "index.json"
    with engine(LocalStore(root)) as e:
        e.tick(utc(2026, 1, 1, 1, 0))  # the first save
        first = saved.read_bytes()
        e.tick(utc(2026, 1, 1, 2, 0))  # the hourly job ran: one entry changed
        assert saved.read_bytes() == first
        for i in range(50):  # a twentieth of the index changes
            place(
                root,
                f"daily/{i:02}.json",
                command_job("15 3 * * *", ["true"]),
                utc(2026, 1, 1, 2, 1),
            )
        e.tick(utc(2026, 1, 1, 2, 2))
        assert saved.read_bytes() != first
        assert Index.from_bytes(saved.read_bytes(), e.index.context).get(
            "daily/00.json"
        ) == e.index.get("daily/00.json")
