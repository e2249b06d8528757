"""The S3 store against a real S3 API over HTTP: conditional requests, 412/409, the engine."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from conftest import boto_client
from faultproxy import FaultProxy
from helpers import FakeClock, append_job, command_job, spawn
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.errors import ConflictError, StoreError
from lambdacron.store import open_store
from lambdacron.store.s3 import S3Store

SEED_COMMAND = {
    "when": "30 18 * * * * *",
    "max_number_executions": 0,
    "run": {"type": "command", "details": {"command": ["echo", "ran"]}},
}


def put(bucket: str, key: str, document: Any) -> None:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    boto_client("s3").put_object(Bucket=bucket, Key=f"jobs/{key}", Body=body)


def get(bucket: str, key: str) -> Any:
    return json.loads(boto_client("s3").get_object(Bucket=bucket, Key=f"jobs/{key}")["Body"].read())


def keys(bucket: str) -> list[str]:
    """The job objects in the bucket (the runner's own index under .lambdacron/ aside)."""
    listing = boto_client("s3").list_objects_v2(Bucket=bucket)
    return sorted(
        item["Key"] for item in listing.get("Contents", ()) if "/.lambdacron/" not in item["Key"]
    )


def next_1830(after: datetime) -> datetime:
    candidate = after.replace(hour=18, minute=30, second=0, microsecond=0)
    return candidate if candidate > after else candidate + timedelta(days=1)


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_endpoint).start()
    yield proxy
    proxy.stop()


def proxied_store(bucket: str, proxy: FaultProxy) -> S3Store:
    from botocore.config import Config

    client = boto_client(
        "s3", endpoint_url=proxy.url, config=Config(retries={"mode": "standard", "max_attempts": 5})
    )
    return S3Store(bucket, "jobs/", client=client)


class TestConditionalRequests:
    def test_a_412_means_someone_else_won(self, bucket: str) -> None:
        store = S3Store(bucket, "jobs/")
        first = store.create("a.json", b"{}")
        store.write("a.json", b'{"v": 2}', first)
        with pytest.raises(ConflictError, match="changed since it was read"):
            store.write("a.json", b'{"v": 3}', first)

    def test_a_409_conditional_conflict_is_retried(self, bucket: str, proxy: FaultProxy) -> None:
        store = proxied_store(bucket, proxy)
        first = store.create("a.json", b"{}")
        proxy.inject("conflict", method="PUT", count=2)
        store.write("a.json", b'{"v": 2}', first)
        assert proxy.plan.injected == {"conflict": 2}
        assert store.read("a.json").body == b'{"v": 2}'

    def test_throttling_is_retried_by_botocore(self, bucket: str, proxy: FaultProxy) -> None:
        store = proxied_store(bucket, proxy)
        store.create("a.json", b"{}")
        proxy.inject("slowdown", method="GET", count=2)
        assert store.read("a.json").body == b"{}"
        assert proxy.plan.injected == {"slowdown": 2}

    def test_a_missing_bucket_is_one_clear_store_error(self, moto_endpoint: str) -> None:
        with pytest.raises(StoreError, match="no such bucket 'nope-nope'"):
            list(S3Store("nope-nope", "jobs/").list())

    def test_only_json_keys_under_the_prefix_are_jobs(self, bucket: str) -> None:
        for name in (
            "jobs/a.json",
            "jobs/sub/b.json",
            "jobs/notes.txt",
            "jobs/.lambdacron/x.json",
            "other/c.json",
            "jobsX/d.json",
        ):
            boto_client("s3").put_object(Bucket=bucket, Key=name, Body=b"{}")
        assert sorted(e.key for e in S3Store(bucket, "jobs/").list()) == ["a.json", "sub/b.json"]

    def test_open_store_takes_an_s3_url(self, bucket: str) -> None:
        store = open_store(f"s3://{bucket}/jobs")
        assert store.url == f"s3://{bucket}/jobs/"


def engine_on(store: S3Store, clock: datetime | None = None) -> Engine:
    """An engine over ``store`` with the standard actions; its clock starts at ``clock``."""
    return Engine(store, default_registry(), clock=FakeClock(clock or datetime.now(UTC)), workers=4)


class TestTheEngineOnS3:
    def engine(self, bucket: str) -> Engine:
        return engine_on(S3Store(bucket, "jobs/"))

    def test_the_seed_readme_sample_runs_at_the_first_tick_after_18_30(self, bucket: str) -> None:
        put(bucket, "ls.json", {"owner": "me", **SEED_COMMAND})
        fire = next_1830(datetime.now(UTC))
        with self.engine(bucket) as engine:
            assert engine.tick(fire - timedelta(minutes=1)).ran == 0
            assert engine.tick(fire + timedelta(minutes=3)).ran == 1
            assert engine.tick(fire + timedelta(minutes=4)).ran == 0
        state = get(bucket, "ls.json")
        assert state["owner"] == "me"  # unknown fields survive
        assert state["execution_count"] == 1
        assert state["last_scheduled"] == fire.isoformat().replace("+00:00", "Z")
        assert state["last_result"]["output"] == "ran\n"

    def test_the_python_sample_runs_on_30_april_and_deletes_itself_after_3_runs(
        self, bucket: str
    ) -> None:
        script = (
            'import json\n\ndata = {"hello": "world"}\n\nprint(json.dumps(data))\n'
            "\nfor x in range(1,10):\n    print(x)\n"
        )
        put(
            bucket,
            "py.json",
            {
                "when": "01 01 30 04 * * *",
                "max_number_executions": 3,
                "run": {"type": "python", "details": {"script": script}},
            },
        )
        first = datetime.now(UTC).year + 1
        with self.engine(bucket) as engine:
            for year in (first, first + 1):
                assert engine.tick(datetime(year, 4, 30, 1, 0, tzinfo=UTC)).ran == 0
                assert engine.tick(datetime(year, 4, 30, 1, 2, tzinfo=UTC)).ran == 1
            state = get(bucket, "py.json")
            assert state["execution_count"] == 2
            assert state["last_result"]["output"].splitlines()[0] == '{"hello": "world"}'
            report = engine.tick(datetime(first + 2, 4, 30, 1, 5, tzinfo=UTC))
        assert (report.ran, report.deleted) == (1, 1)
        assert keys(bucket) == []

    def test_max_number_executions_deletes_the_object(self, bucket: str) -> None:
        put(bucket, "twice.json", {**SEED_COMMAND, "max_number_executions": 2})
        fire = next_1830(datetime.now(UTC))
        with self.engine(bucket) as engine:
            assert engine.tick(fire).ran == 1
            report = engine.tick(fire + timedelta(days=1))
        assert (report.ran, report.deleted) == (1, 1)
        assert keys(bucket) == []

    def test_an_invalid_object_is_left_byte_for_byte(self, bucket: str) -> None:
        put(bucket, "bad.json", b'{"when": "61 * * * *"')
        with self.engine(bucket) as engine:
            assert engine.tick(datetime.now(UTC) + timedelta(hours=1)).invalid == 1
        body = boto_client("s3").get_object(Bucket=bucket, Key="jobs/bad.json")["Body"].read()
        assert body == b'{"when": "61 * * * *"'


def test_concurrent_tick_processes_on_s3_run_each_occurrence_once(
    bucket: str, tmp_path: Any
) -> None:
    out = tmp_path / "out.txt"
    jobs = 120
    for i in range(jobs):
        put(bucket, f"j/{i:03}.json", command_job("@hourly", ["sh", "-c", f"echo job{i} >> {out}"]))
    now = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:05:00Z")
    store = f"s3://{bucket}/jobs/"
    tick = ("tick", "--store", store, "--now", now, "--allow-future", "--json")
    processes = [spawn(*tick) for _ in range(6)]
    summaries = [json.loads(p.communicate(timeout=300)[0]) for p in processes]
    counts = Counter(out.read_text().split())
    assert len(counts) == jobs and set(counts.values()) == {1}
    assert sum(s["ran"] for s in summaries) == jobs


class TestEditsDuringARun:
    """The user rewrites or deletes the job object while its run is going."""

    def script(self, bucket: str, key: str, action: str) -> str:
        return (
            "import boto3, json\n"
            "s3 = boto3.client('s3')\n"
            f"bucket, key = {bucket!r}, {'jobs/' + key!r}\n"
            + (
                "doc = json.loads(s3.get_object(Bucket=bucket, Key=key)['Body'].read())\n"
                "doc['note'] = 'edited'\n"
                "s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc).encode())\n"
                if action == "edit"
                else "s3.delete_object(Bucket=bucket, Key=key)\n"
            )
        )

    def test_an_edit_is_kept_and_runner_fields_merged(self, bucket: str) -> None:
        put(
            bucket,
            "e.json",
            {
                "when": "@hourly",
                "max_number_executions": 1,
                "run": {
                    "type": "python",
                    "details": {"script": self.script(bucket, "e.json", "edit")},
                },
            },
        )
        with engine_on(S3Store(bucket, "jobs/")) as engine:
            report = engine.tick(datetime.now(UTC) + timedelta(hours=1))
        assert (report.ran, report.failed, report.deleted) == (1, 0, 0)  # edited: kept
        state = get(bucket, "e.json")
        assert state["note"] == "edited"
        assert state["execution_count"] == 1 and state["last_result"]["status"] == "ok"
        assert "claim" not in state

    def test_a_deletion_is_not_undone(self, bucket: str) -> None:
        put(
            bucket,
            "d.json",
            {
                "when": "@hourly",
                "run": {
                    "type": "python",
                    "details": {"script": self.script(bucket, "d.json", "delete")},
                },
            },
        )
        with engine_on(S3Store(bucket, "jobs/")) as engine:
            report = engine.tick(datetime.now(UTC) + timedelta(hours=1))
        assert (report.ran, report.failed) == (1, 0)
        assert keys(bucket) == []


def lists_made(store: S3Store) -> Counter[str]:
    """Requests by operation, counted at the client as they are made."""
    made: Counter[str] = Counter()
    store.client.meta.events.register(
        "before-call.s3", lambda model, **_: made.update([model.name])
    )
    return made


class TestRangeListing:
    """Split points cut a listing into ranges that are listed in parallel (StartAfter)."""

    KEYS = sorted(f"{i % 7:02x}/{i:04d}.json" for i in range(26))

    @pytest.fixture
    def store(self, bucket: str) -> S3Store:
        for key in self.KEYS:
            put(bucket, key, {"when": "@daily"})
        put(bucket, ".lambdacron/index.json", b"{}")  # the runner's own: never listed
        return S3Store(bucket, "jobs/", list_page_size=4)

    @pytest.mark.parametrize(
        "splits",
        [
            pytest.param(KEYS[3::4], id="a page apart"),
            pytest.param(KEYS[1::2], id="half a page apart"),
            pytest.param(KEYS[::9], id="ranges of several pages"),
            pytest.param(["00", "03/zzz", "04/0000.json", "x"], id="keys that do not exist"),
            pytest.param([KEYS[-1], "zz"], id="at and past the end"),
            pytest.param(["05", "01"], id="unsorted: ignored"),
        ],
    )
    def test_any_split_points_list_the_same_entries(
        self, store: S3Store, splits: list[str]
    ) -> None:
        whole = sorted((e.key, e.version.token, e.size) for e in store.list())
        assert [key for key, _, _ in whole] == self.KEYS
        ranged = [(e.key, e.version.token, e.size) for e in store.list(splits=splits)]
        assert sorted(ranged) == whole  # and no key twice

    def test_split_points_a_page_apart_make_one_request_per_range(self, store: S3Store) -> None:
        made = lists_made(store)
        splits = self.KEYS[3::4]  # ranges of 4 keys, the index object in the first: 5
        list(store.list(splits=splits))
        first_range_pages = 2
        assert made["ListObjectsV2"] == len(splits) + first_range_pages

    def test_a_range_that_grew_since_takes_more_pages_and_misses_nothing(
        self, bucket: str, store: S3Store
    ) -> None:
        splits = self.KEYS[3::4]
        for extra in ("00/0000a.json", "00/0000b.json", "00/0000c.json", "00/0000d.json"):
            put(bucket, extra, {"when": "@daily"})
        made = lists_made(store)
        assert len(list(store.list(splits=splits))) == len(self.KEYS) + 4
        assert made["ListObjectsV2"] > len(splits) + 1


class TestTheEngineListsInRanges:
    def test_a_steady_tick_lists_ranges_and_runs_every_due_job_once(
        self, bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import lambdacron.engine.tick as tick_module

        monkeypatch.setattr(tick_module, "CHUNK", 5)  # due jobs start while listing goes on
        log = tmp_path / "runs.log"
        for i in range(30):
            put(bucket, f"{i % 5:02x}/{i:04d}.json", append_job("* * * * *", log, f"job {i}"))
        store = S3Store(bucket, "jobs/", list_page_size=4)
        start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
        with engine_on(store, start) as engine:
            first = engine.tick(start)
            made = lists_made(store)
            second = engine.tick(start + timedelta(minutes=1))
        assert (first.seen, first.ran, second.seen, second.ran) == (30, 30, 30, 30)
        lines = log.read_text().splitlines()
        assert sorted(Counter(lines).values()) == [2] * 30  # each job once per tick
        assert made["GetObject"] == 0  # the due jobs were claimed from what was written
        splits = 30 // 4  # from the first tick's index: ranges of 4 keys
        assert splits + 1 <= made["ListObjectsV2"] <= splits + 2

    def test_a_listing_that_fails_halfway_keeps_the_index_and_reports_once(
        self, bucket: str, proxy: FaultProxy, tmp_path: Any
    ) -> None:
        from botocore.config import Config

        log = tmp_path / "runs.log"
        for i in range(30):
            put(bucket, f"{i % 5:02x}/{i:04d}.json", append_job("0 0 1 1 *", log, f"job {i}"))
        client = boto_client(
            "s3", endpoint_url=proxy.url, config=Config(retries={"total_max_attempts": 1})
        )
        store = S3Store(bucket, "jobs/", client=client, list_page_size=4)
        now = datetime.now(UTC)
        with engine_on(store, now) as engine:
            assert engine.tick(now).seen == 30
            proxy.inject("internal", method="GET", skip=2)
            report = engine.tick(now + timedelta(minutes=1))
            assert len(engine.index) == 30  # nothing evicted for not being listed
            assert report.store_errors == 1
            assert "cannot list the store" in report.events[-1].message
            assert engine.tick(now + timedelta(minutes=2)).seen == 30
        assert not log.exists()


def test_a_listing_and_a_read_agree_on_when_a_job_changed(bucket: str) -> None:
    store = S3Store(bucket, "jobs/")
    store.create("a.json", b"{}")
    (entry,) = store.list()
    # The listing's ISO 8601 (milliseconds) and the header's RFC 1123 (seconds).
    assert abs(entry.version.stamp - store.read("a.json").version.stamp) < 1


class IgnoresStartAfter:
    """A client for a service that ignores StartAfter (some S3-compatible ones do)."""

    def __init__(self, client: Any, bucket: str | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.start_after: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def list_objects_v2(self, **kwargs: Any) -> Any:
        if "StartAfter" in kwargs:
            self.start_after.append(kwargs.pop("StartAfter"))
        if self.bucket is not None:
            kwargs["Bucket"] = self.bucket
        return self.client.list_objects_v2(**kwargs)


class TestRangesNeedOrderedListings:
    def test_a_service_that_ignores_start_after_fails_one_listing_then_lists_in_sequence(
        self, bucket: str
    ) -> None:
        keys = [f"{i:02d}.json" for i in range(12)]
        for key in keys:
            put(bucket, key, {"when": "@daily"})
        client = IgnoresStartAfter(boto_client("s3"))
        store = S3Store(bucket, "jobs/", client=client, list_page_size=4)
        with pytest.raises(StoreError, match="ignored StartAfter or came out of order"):
            list(store.list(splits=keys[3::4]))
        client.start_after.clear()
        assert sorted(e.key for e in store.list(splits=keys[3::4])) == keys
        assert client.start_after == []

    def test_a_directory_bucket_is_listed_in_sequence(self, bucket: str) -> None:
        # botocore sends directory-bucket requests to S3 Express, which moto does not serve:
        # the client maps the name to the test bucket; what is checked is what is asked.
        put(bucket, "a.json", {"when": "@daily"})
        put(bucket, "b.json", {"when": "@daily"})
        client = IgnoresStartAfter(boto_client("s3"), bucket=bucket)
        store = S3Store("jobs--use1-az4--x-s3", "jobs/", client=client, list_page_size=1)
        assert sorted(e.key for e in store.list(splits=["a.json"])) == ["a.json", "b.json"]
        assert client.start_after == []


def test_ls_reads_the_jobs_in_parallel_and_lists_them_in_key_order(bucket: str) -> None:
    from lambdacron.engine.inventory import inventory

    names = [f"{i:02d}/job.json" for i in range(30)]
    for name in reversed(names):
        put(bucket, name, command_job("0 9 1 1 * 2030", ["true"], execution_count=3))
    put(bucket, "15/broken.json", b"{not json")
    store = open_store(f"s3://{bucket}/jobs/")
    assert isinstance(store, S3Store)
    in_flight, peak = [0], [0]

    def before(model: Any, **_: Any) -> None:
        if model.name == "GetObject":
            in_flight[0] += 1  # the event runs in the calling thread; += races are benign here
            peak[0] = max(peak[0], in_flight[0])

    def after(model: Any, **_: Any) -> None:
        if model.name == "GetObject":
            in_flight[0] -= 1

    store.client.meta.events.register("before-call.s3", before)
    store.client.meta.events.register("after-call.s3", after)
    rows = list(inventory(store, datetime.now(UTC)))
    assert [r.key for r in rows] == sorted([*names, "15/broken.json"])
    assert peak[0] > 1
    broken = next(r for r in rows if r.key == "15/broken.json")
    assert broken.status == "invalid" and broken.error is not None and "JSON" in broken.error
    good = [r for r in rows if r.key != "15/broken.json"]
    assert {(r.runs, r.status, r.next_run) for r in good} == {
        (3, "never run", datetime(2030, 1, 1, 9, tzinfo=UTC))
    }


class TestKeysLambdacronCannotAddress:
    """Objects whose keys no job key can name are each one line in tick and a row in ls."""

    PROBLEMS: ClassVar[dict[str, str]] = {
        "x//double.json": "the key has an empty path segment; lambdacron cannot address it",
        "./dot.json": "the key has a '.' path segment; lambdacron cannot address it",
        "a/../up.json": "the key has a '..' path segment; lambdacron cannot address it",
        "tab\\there.json": "the name has a character that is not printable (\\t); "
        "lambdacron cannot address it",
        "back\\\\slash.json": "the name has a backslash; lambdacron cannot address it",
        "/lead.json": "the key has an empty path segment; lambdacron cannot address it",
    }
    RAW: ClassVar[list[str]] = [
        "x//double.json",
        "./dot.json",
        "a/../up.json",
        "tab\there.json",
        "back\\slash.json",
    ]

    @pytest.fixture
    def store_url(self, bucket: str, tmp_path: Any) -> str:
        for raw in self.RAW:
            put(bucket, raw, {"when": "* * * * *"})
        # "jobs//lead.json": the prefix "jobs/" then an empty segment.
        boto_client("s3").put_object(Bucket=bucket, Key="jobs//lead.json", Body=b"{}")
        put(bucket, ".hidden.json", {"when": "* * * * *"})  # reserved: never a job, no line
        put(bucket, "good.json", append_job("* * * * *", tmp_path / "ran.txt", "good"))
        assert len(keys(bucket)) == len(self.RAW) + 3  # S3 kept every key as it was given
        return f"s3://{bucket}/jobs/"

    def test_the_listing_names_each_one(self, store_url: str) -> None:
        store = open_store(store_url)
        entries = list(store.list())
        assert {e.key: e.problem for e in entries if e.problem} == self.PROBLEMS
        assert [e.key for e in entries if e.problem is None] == ["good.json"]
        parts = [list(store.list((i, 3))) for i in range(3)]
        assert sorted(e.key for part in parts for e in part) == sorted(e.key for e in entries)

    def test_tick_and_ls_name_each_one(self, store_url: str, run_cli: Any, tmp_path: Any) -> None:
        moment = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
        now = moment.isoformat()
        tick = run_cli("tick", "--store", store_url, "--now", now, "--allow-future")
        assert tick.returncode == 0, tick.stderr
        assert (tmp_path / "ran.txt").read_text() == "good\n"
        lines = tick.stderr.splitlines()
        for key, problem in self.PROBLEMS.items():
            expected = f"invalid {key}: {problem} (skipped; file left as it is)"
            assert sum(line.endswith(expected) for line in lines) == 1, (expected, tick.stderr)
        assert f"{len(self.PROBLEMS)} invalid" in tick.stdout
        ls = run_cli("ls", "--store", store_url, "--json", "--now", now)
        rows = {row["key"]: (row["status"], row["error"]) for row in json.loads(ls.stdout)}
        assert rows == {
            "good.json": ("ok", None),
            **{key: ("invalid", problem) for key, problem in self.PROBLEMS.items()},
        }
