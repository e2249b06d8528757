"""What is particular to the local directory store: atomic files, symlinks, concurrency."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import Run
from helpers import append_job, place, read_json
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.errors import ConflictError, InvalidKeyError, StoreError
from lambdacron.store import LocalStore

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_a_missing_store_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"does not exist.*lambdacron init"):
        LocalStore(tmp_path / "nope")


@pytest.mark.parametrize("name", ["/", "//", "/tmp/..", "/./"])
def test_the_file_system_s_root_is_no_store(run_cli: Run, name: str) -> None:
    # A typo for ./ would walk the whole machine (for minutes, /proc and /sys included).
    for command in ("ls", "tick"):
        result = run_cli(command, "--store", name, timeout=30)
        assert result.returncode == 2
        assert result.stderr.strip().endswith(
            "is the file system's root; give the folder that holds the jobs"
        )
    assert not Path("/.lambdacron").exists()


def test_a_symlink_leading_out_of_the_store_is_neither_listed_nor_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text('{"when": "@daily"}')
    store = LocalStore(tmp_path / "store", create=True)
    (store.root / "link.json").symlink_to(outside / "secret.json")
    (store.root / "dir").symlink_to(outside)
    assert [(e.key, e.problem) for e in store.list()] == [
        ("link.json", "a symbolic link that leads out of the store")
    ]
    with pytest.raises(InvalidKeyError, match="outside the store"):
        store.read("link.json")
    with pytest.raises(InvalidKeyError, match="outside the store"):
        store.read("dir/secret.json")


def test_a_sibling_folder_whose_name_extends_the_store_s_is_outside_it(tmp_path: Path) -> None:
    # "/x/jobs-old" starts with "/x/jobs" as a string; it is not inside "/x/jobs".
    sibling = tmp_path / "jobs-old"
    sibling.mkdir()
    (sibling / "a.json").write_text('{"when": "@daily"}')
    store = LocalStore(tmp_path / "jobs", create=True)
    (store.root / "old").symlink_to(sibling)
    with pytest.raises(InvalidKeyError, match="outside the store"):
        store.read("old/a.json")
    with pytest.raises(InvalidKeyError, match="outside the store"):
        store.create("old/b.json", b"{}")
    assert sorted(p.name for p in sibling.iterdir()) == ["a.json"]


def test_a_folder_named_like_a_job_is_refused_as_a_directory(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    (tmp_path / "x.json").mkdir()
    with pytest.raises(InvalidKeyError, match=r"x\.json: a directory, not a regular file"):
        store.read("x.json")


def test_a_file_that_grew_after_its_size_was_taken_is_read_to_the_limit_and_no_further(
    tmp_path: Path,
) -> None:
    # read() sizes its first read by fstat; the file can grow before that read.
    path = tmp_path / "a.json"
    path.write_bytes(b"x" * 300_000)
    for limit, expected in ((100, 101), (1_000_000, 300_000), (300_000, 300_000)):
        store = LocalStore(tmp_path, max_job_bytes=limit)
        fd = os.open(path, os.O_RDONLY)
        try:
            assert len(store._read_to_end(fd, 10)) == expected
        finally:
            os.close(fd)


def test_writes_leave_no_temporary_files_behind(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    version = store.create("a.json", b"{}")
    store.write("a.json", b'{"x": 1}', version)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".lambdacron", "a.json"]


@pytest.mark.parametrize("name", ["a" * 250 + ".json", "é" * 124 + "aa.json"])
def test_a_file_named_up_to_the_file_system_s_limit_is_run_and_written_back(
    tmp_path: Path, name: str
) -> None:
    # Placed by hand: 255 bytes, the most a name can have. Its write-back goes through a
    # temporary name beside it, which must fit too.
    assert len(name.encode()) == 255
    root = tmp_path / "jobs"
    place(root, name, append_job("@hourly", tmp_path / "ran.txt", "long"))
    with Engine(LocalStore(root), default_registry(), clock=lambda: NOW) as engine:
        report = engine.tick(NOW + timedelta(hours=2))
    assert (report.ran, report.store_errors) == (1, 0)
    assert read_json(root / name)["execution_count"] == 1
    assert sorted(p.name for p in root.iterdir()) == [".lambdacron", name]


def test_a_user_edit_in_place_changes_the_version(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    version = store.create("a.json", b"{}")
    path = tmp_path / "a.json"
    path.write_bytes(b'{"y": 2}')
    os.utime(path, ns=(version_ns := 1_700_000_000_000_000_000, version_ns))
    with pytest.raises(ConflictError):
        store.write("a.json", b'{"x": 1}', version)
    assert path.read_bytes() == b'{"y": 2}'


def test_of_many_threads_writing_at_one_version_exactly_one_wins(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    version = store.create("a.json", b"{}")
    wins: list[int] = []
    barrier = threading.Barrier(16)

    def contend(n: int) -> None:
        barrier.wait()
        try:
            store.write("a.json", f'{{"winner": {n}}}'.encode(), version)
            wins.append(n)
        except ConflictError:
            pass

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert store.read("a.json").body == f'{{"winner": {wins[0]}}}'.encode()


def test_temporary_files_left_by_a_killed_writer_are_removed_when_stale(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    store.create("a.json", b"{}")
    fresh = tmp_path / ".a.json.abc123.tmp"
    stale = tmp_path / ".a.json.def456.tmp"
    fresh.write_bytes(b"{")
    stale.write_bytes(b"{")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert [e.key for e in store.list()] == ["a.json"]
    assert fresh.exists() and not stale.exists()


def test_a_store_whose_path_is_not_utf8_takes_new_jobs(tmp_path: Path) -> None:
    # A folder name of bytes no encoding reads reaches Python as surrogate escapes; sizes
    # are the file system's bytes, which such a name has too.
    root = Path(os.fsdecode(os.fsencode(tmp_path) + b"/\xff-jobs"))
    store = LocalStore(root, create=True)
    store.create("hello.json", b"{}")
    assert store.read("hello.json").body == b"{}"
    assert os.listdir(os.fsencode(root)) == [b"hello.json"]
