"""The store contract: every store implementation passes these same tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lambdacron.errors import (
    ConflictError,
    InvalidKeyError,
    JobNotFoundError,
    JobTooLargeError,
)
from lambdacron.store import LocalStore, Store

StoreFactory = Callable[..., Store]


@pytest.fixture(params=["local", "s3"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    def local(**options: int) -> Store:
        root = tmp_path / "store"
        return LocalStore(root, create=True, **options)

    def s3(**options: int) -> Store:
        from lambdacron.store.s3 import S3Store

        bucket = request.getfixturevalue("bucket")
        return S3Store(bucket, "jobs/", **options)

    yield {"local": local, "s3": s3}[request.param]


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store()


BODY = b'{"when": "@daily"}\n'


def test_a_created_job_can_be_listed_and_read(store: Store) -> None:
    version = store.create("a/b.json", BODY)
    (entry,) = list(store.list())
    assert (entry.key, entry.version.token, entry.size) == ("a/b.json", version.token, len(BODY))
    document = store.read("a/b.json")
    assert (document.body, document.version.token) == (BODY, version.token)


def test_create_never_overwrites(store: Store) -> None:
    store.create("a.json", BODY)
    with pytest.raises(ConflictError, match="already exists"):
        store.create("a.json", b"{}")
    assert store.read("a.json").body == BODY


def test_a_write_at_the_expected_version_wins_and_changes_the_version(store: Store) -> None:
    first = store.create("a.json", BODY)
    second = store.write("a.json", b'{"v": 2}', first)
    assert second.token != first.token
    assert store.read("a.json").body == b'{"v": 2}'


def test_a_write_at_a_stale_version_is_a_conflict_and_changes_nothing(store: Store) -> None:
    first = store.create("a.json", BODY)
    store.write("a.json", b'{"v": 2}', first)
    with pytest.raises(ConflictError):
        store.write("a.json", b'{"v": 3}', first)
    assert store.read("a.json").body == b'{"v": 2}'


def test_a_write_to_a_deleted_job_does_not_resurrect_it(store: Store) -> None:
    first = store.create("a.json", BODY)
    store.delete("a.json")
    with pytest.raises(JobNotFoundError):
        store.write("a.json", b"{}", first)
    assert list(store.list()) == []


def test_a_conditional_delete_at_a_stale_version_keeps_the_job(store: Store) -> None:
    first = store.create("a.json", BODY)
    second = store.write("a.json", b'{"v": 2}', first)
    with pytest.raises(ConflictError):
        store.delete("a.json", first)
    store.delete("a.json", second)
    with pytest.raises(JobNotFoundError):
        store.read("a.json")


def test_reading_or_deleting_a_missing_job_is_not_found(store: Store) -> None:
    with pytest.raises(JobNotFoundError):
        store.read("nope.json")
    with pytest.raises(JobNotFoundError):
        store.delete("nope.json")


def test_not_found_is_also_a_key_error(store: Store) -> None:
    with pytest.raises(KeyError):
        store.read("nope.json")


@pytest.mark.parametrize(
    "key",
    [
        "../x.json",
        "/etc/x.json",
        "a/../../x.json",
        "a/./b.json",
        ".hidden.json",
        "a/.x/b.json",
        "x.txt",
        "",
        "a\\b.json",
        "a/.json",
    ],
)
def test_keys_that_escape_or_are_not_jobs_are_refused(store: Store, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        store.create(key, BODY)
    with pytest.raises(InvalidKeyError):
        store.read(key)


def test_only_json_files_are_jobs(store: Store) -> None:
    store.create("a.json", BODY)
    store.create("sub/dir/b.json", BODY)
    assert sorted(e.key for e in store.list()) == ["a.json", "sub/dir/b.json"]


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(make_store: StoreFactory) -> None:
    store = make_store(max_job_bytes=100)
    store.create("big.json", b"{" + b" " * 200 + b"}")
    with pytest.raises(JobTooLargeError, match="202 bytes is over the 100-byte limit"):
        store.read("big.json")


def test_a_file_of_exactly_the_size_limit_is_read_whole(make_store: StoreFactory) -> None:
    store = make_store(max_job_bytes=100)
    body = b"{" + b" " * 98 + b"}"
    store.create("full.json", body)
    assert store.read("full.json").body == body


def test_the_version_reflects_when_the_job_changed(store: Store) -> None:
    version = store.create("a.json", BODY)
    (entry,) = list(store.list())
    assert entry.version.modified == version.modified
    assert entry.version.modified.tzinfo is not None
