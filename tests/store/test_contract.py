"""The store contract: every store implementation passes these same tests."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdacron.errors import (
    ConflictError,
    InvalidKeyError,
    JobNotFoundError,
    JobTooLargeError,
)
from lambdacron.store import LocalStore, Store
from lambdacron.store.keys import check_relative_key, shard_of

StoreFactory = Callable[..., Store]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.aws)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Each call makes a new, empty store (a hypothesis example needs one of its own)."""
    made = itertools.count()

    def local(**options: int) -> Store:
        options.pop("list_page_size", None)  # a directory is not listed in pages
        return LocalStore(tmp_path / f"store{next(made)}", create=True, **options)

    def s3(**options: int) -> Store:
        from lambdacron.store.s3 import S3Store

        bucket = request.getfixturevalue("bucket")
        return S3Store(bucket, f"jobs{next(made)}/", **options)

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


# -- the exact exceptions


def test_a_key_under_a_job_is_not_found_not_a_store_failure(store: Store) -> None:
    # Locally "a.json/b.json" has a file where a folder would be; in S3 it is just absent.
    version = store.create("a.json", BODY)
    with pytest.raises(JobNotFoundError):
        store.read("a.json/b.json")
    with pytest.raises(JobNotFoundError):
        store.write("a.json/b.json", BODY, version)
    with pytest.raises(JobNotFoundError):
        store.delete("a.json/b.json")
    with pytest.raises(JobNotFoundError):
        store.delete("a.json/b.json", version)
    with pytest.raises(JobNotFoundError):
        store.write("gone/b.json", BODY, version)  # its folder, too, is gone


def test_deleting_a_missing_job_at_a_version_is_not_found(store: Store) -> None:
    version = store.create("a.json", BODY)
    store.delete("a.json")
    with pytest.raises(JobNotFoundError):
        store.delete("a.json", version)


@pytest.mark.parametrize("key", ["../x.json", "a//b.json", ".hidden.json", "x.txt", "a\tb.json"])
def test_every_operation_refuses_a_key_that_is_not_a_job_key(store: Store, key: str) -> None:
    version = store.create("a.json", BODY)
    for operation in (
        lambda: store.write(key, BODY, version),
        lambda: store.delete(key),
        lambda: store.delete(key, version),
        lambda: store.check_key(key),
    ):
        with pytest.raises(InvalidKeyError):
            operation()
    assert [e.key for e in store.list()] == ["a.json"]


def test_check_key_is_one_rule_for_every_store() -> None:
    assert "check_key" not in Store.__abstractmethods__


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.text(alphabet="ab./\\\t-", max_size=12).map(lambda k: k + ".json"))
def test_check_key_agrees_with_the_key_rules(store: Store, key: str) -> None:
    try:
        expected: str | None = check_relative_key(key)
    except InvalidKeyError:
        expected = None
    try:
        got: str | None = store.check_key(key)
    except InvalidKeyError:
        got = None
    assert got == expected


# -- the runner's own files


def test_the_runner_s_own_files_are_kept_apart_from_the_jobs(store: Store) -> None:
    assert store.read_internal("index.json") is None
    store.write_internal("index.json", b'{"v": 1}')
    store.write_internal("index-0-of-2.json", b"x" * 100_000)
    assert store.read_internal("index.json") == b'{"v": 1}'
    store.write_internal("index.json", b'{"v": 2}')
    assert store.read_internal("index.json") == b'{"v": 2}'
    assert store.read_internal("index-0-of-2.json") == b"x" * 100_000
    # Never listed as jobs, in whole or in shards, nor reachable as one.
    assert list(store.list()) == []
    assert [e for i in range(2) for e in store.list((i, 2))] == []
    with pytest.raises(InvalidKeyError):
        store.read(".lambdacron/index.json")
    store.create("index.json", BODY)
    assert store.read_internal("index.json") == b'{"v": 2}'
    assert store.read("index.json").body == BODY


# -- listings: shards and ranges

FOLDER = st.text(alphabet="ab0f_-", min_size=1, max_size=3)
KEY = st.builds(
    lambda folders, name: "/".join([*folders, f"{name}.json"]),
    st.lists(FOLDER, max_size=2),
    st.text(alphabet="ab0f_-", min_size=1, max_size=3),
)
KEYS = st.lists(KEY, min_size=0, max_size=12, unique=True)
LISTINGS = settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@LISTINGS
@given(keys=KEYS, shards=st.integers(1, 5), internal=st.booleans())
def test_shards_partition_the_keys(
    make_store: StoreFactory, keys: list[str], shards: int, internal: bool
) -> None:
    store = make_store(list_page_size=2)
    for key in keys:
        store.create(key, BODY)
    if internal:
        store.write_internal("index.json", b"{}")
    whole = sorted(e.key for e in store.list())
    assert whole == sorted(keys)
    parts = [[e.key for e in store.list((i, shards))] for i in range(shards)]
    seen = Counter(key for part in parts for key in part)
    assert sorted(seen) == whole and set(seen.values()) <= {1}  # each key in exactly one
    for i, part in enumerate(parts):
        assert all(shard_of(key, shards) == i for key in part)


SPLIT = st.one_of(KEY, st.text(alphabet="ab0f_-./", max_size=5))


@LISTINGS
@given(keys=KEYS, data=st.data())
def test_any_split_points_list_the_same_entries_in_the_same_order(
    make_store: StoreFactory, keys: list[str], data: st.DataObject
) -> None:
    store = make_store(list_page_size=2)
    for key in keys:
        store.create(key, BODY)
    store.write_internal("index.json", b"{}")
    splits = sorted(
        set(
            data.draw(
                st.lists(st.one_of(st.sampled_from(keys), SPLIT) if keys else SPLIT, max_size=6)
            )
        )
    )
    whole = list(store.list())
    assert sorted(e.key for e in whole) == sorted(keys)
    assert list(store.list(splits=splits)) == whole
