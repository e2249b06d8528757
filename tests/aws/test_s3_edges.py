"""The S3 store against objects and edits a careless or hostile user can make through the S3
API: key names S3 takes and lambdacron must either run or name, keys too long for S3,
compressed bodies, versioned buckets. Every case against moto over HTTP."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Run, boto_client
from helpers import append_job
from lambdacron.actions import default_registry
from lambdacron.cli import main
from lambdacron.engine import Engine
from lambdacron.errors import InvalidKeyError, JobTooLargeError
from lambdacron.store import open_store
from lambdacron.store.keys import check_relative_key, printable_key
from lambdacron.store.s3 import S3Store

#: Never due while a test runs: a tick reads, validates and adopts it, and runs nothing.
FAR = "0 0 1 1 * 2099"


def job_body(**fields: Any) -> bytes:
    return json.dumps(
        {"when": FAR, **fields, "run": {"type": "command", "details": {"command": ["true"]}}}
    ).encode()


def new_bucket() -> str:
    name = f"edge-{uuid.uuid4().hex[:12]}"
    boto_client("s3").create_bucket(Bucket=name)
    return name


def snapshot(bucket: str, key: str) -> tuple[bytes, dict[str, Any]]:
    """An object's bytes and everything S3 says about it besides."""
    response = boto_client("s3").get_object(Bucket=bucket, Key=key)
    body = response.pop("Body").read()
    response.pop("ResponseMetadata")
    return body, response


@dataclass
class Cli:
    code: int
    out: str
    err: str


def cli(*args: str) -> Cli:
    """The CLI in this process (hypothesis runs it many times), over real HTTP to moto."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Cli(code, out.getvalue(), err.getvalue())


def expected_kind(name: str) -> str | None:
    """What the README says becomes of an object named ``name`` under the store's prefix:
    None (not a job: no ``.json`` ending, or a reserved name starting with '.'), "job", or
    "problem" (meant as a job, but no key can address it)."""
    if not name.endswith(".json"):
        return None
    parts = name.split("/")
    if any(part.startswith(".") and part not in (".", "..") for part in parts):
        return None
    if any(part in ("", ".", "..") for part in parts) or "\\" in name or not name.isprintable():
        return "problem"
    return "job"


# Characters a user can put in an S3 key that mean something to a URL, a shell, XML, Unicode
# normalisation or case folding, beside plain ones.
CHARS = [*"ab A", "%", "+", "#", "?", "&", "=", ";", "~", "*", "'", '"', "<", ">", "é"]
CHARS += ["e\u0301", "日", "\t", "\u2028", "\xa0", "\\", "\x7f"]
SEGMENT = st.one_of(
    st.sampled_from(["", ".", "..", ".hidden", "sub", "A", "a", "%2F", "a+b", "x.json"]),
    st.lists(st.sampled_from(CHARS), min_size=1, max_size=5).map("".join),
)
ENDING = st.sampled_from([".json", ".json", ".json", ".JSON", ".json/", "/", ".txt", ""])
NAME = st.builds(
    lambda parts, ending: "/".join(parts) + ending,
    st.lists(SEGMENT, min_size=1, max_size=3),
    ENDING,
)
PREFIX = st.sampled_from(["jobs/", "jobs", "my jobs+%20/ü", "Ünï code/x", ""])


class TestEveryKeyAUserCanCreate:
    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(prefix=PREFIX, names=st.lists(NAME, min_size=1, max_size=5, unique=True))
    def test_is_a_job_or_one_line_and_ls_tick_show_agree(
        self, moto_endpoint: str, prefix: str, names: list[str]
    ) -> None:
        bucket = new_bucket()
        s3 = boto_client("s3")
        base = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        meta = {"owner": "me"}
        for name in names:
            s3.put_object(Bucket=bucket, Key=base + name, Body=job_body(note=name), Metadata=meta)
        before = {name: snapshot(bucket, base + name) for name in names}
        jobs = [n for n in names if expected_kind(n) == "job"]
        problems = [n for n in names if expected_kind(n) == "problem"]
        url = f"s3://{bucket}/{prefix}"

        ls = cli("ls", "--store", url, "--json")
        assert (ls.code, ls.err) == (0, "")
        rows = {row["key"]: row for row in json.loads(ls.out)}
        assert set(rows) == {*jobs, *map(printable_key, problems)}
        assert all((rows[n]["status"], rows[n]["error"]) == ("never run", None) for n in jobs)
        for name in problems:
            row = rows[printable_key(name)]
            assert row["status"] == "invalid" and "lambdacron cannot address it" in row["error"]

        tick = cli("tick", "--store", url, "--json")
        assert tick.code == 0, tick.err
        summary = json.loads(tick.out)
        assert (summary["seen"], summary["invalid"]) == (len(jobs) + len(problems), len(problems))
        assert summary["store_errors"] == summary["internal_errors"] == 0
        lines = tick.err.splitlines()
        assert len(lines) == len(problems), tick.err
        for name in problems:
            shown = f"invalid {printable_key(name)}: "
            assert sum(shown in line for line in lines) == 1, (name, tick.err)

        for name in jobs:
            show = cli("show", name, "--store", url)
            assert (show.code, show.err) == (0, ""), name
            shown = json.loads(show.out)
            # The tick's write-back (recording when the schedule took effect) kept the
            # user's own field and the object's metadata.
            assert shown["note"] == name and "scheduled_from" in shown
            assert snapshot(bucket, base + name)[1]["Metadata"] == meta
        for name in problems:
            show = cli("show", name, "--store", url)
            assert show.code == 2 and show.out == "" and len(show.err.splitlines()) == 1

        # Whatever is not a job, or cannot be one, is as the user left it.
        for name in names:
            if name not in jobs:
                assert snapshot(bucket, base + name) == before[name], name


class TestKeysTooLongForS3:
    """S3 keys are at most 1,024 bytes of UTF-8, the prefix included."""

    @pytest.mark.parametrize(
        "key",
        [
            pytest.param("é" * 600 + ".json", id="1,205 bytes in 605 characters"),
            pytest.param("a" * 1015 + ".json", id="1,020 characters, 1,025 bytes with the prefix"),
        ],
    )
    def test_a_key_is_refused_in_one_line_before_any_request(self, bucket: str, key: str) -> None:
        store = S3Store(bucket, "jobs/")
        for attempt in (lambda: store.create(key, job_body()), lambda: store.read(key)):
            with pytest.raises(InvalidKeyError) as refused:
                attempt()
            message = str(refused.value)
            assert "S3 keys are at most 1024 bytes" in message and len(message) < 200
        assert "Contents" not in boto_client("s3").list_objects_v2(Bucket=bucket)

    def test_a_key_of_exactly_1024_bytes_is_a_job(self, bucket: str) -> None:
        store = S3Store(bucket, "jobs/")
        key = "a" * (1024 - len("jobs/") - len(".json")) + ".json"
        store.create(key, job_body())
        assert [e.key for e in store.list()] == [key]

    def test_add_refuses_it_naming_the_problem(
        self, bucket: str, run_cli: Run, tmp_path: Path
    ) -> None:
        (tmp_path / "job.json").write_bytes(job_body())
        added = run_cli(
            "add", "job.json", "--key", "é" * 600 + ".json", "--store", f"s3://{bucket}/jobs/"
        )
        assert added.returncode == 2 and added.stdout == ""
        (line,) = added.stderr.splitlines()
        assert "S3 keys are at most 1024 bytes" in line and len(line) < 250
        assert "Contents" not in boto_client("s3").list_objects_v2(Bucket=bucket)

    def test_a_prefix_no_job_key_fits_under_is_refused(self) -> None:
        with pytest.raises(InvalidKeyError, match="no job key fits under it"):
            open_store("s3://bucket/" + "p" * 1020 + "/")

    def test_a_key_too_long_for_any_store_says_so_in_a_short_line(self) -> None:
        with pytest.raises(InvalidKeyError) as refused:
            check_relative_key("a" * 2000 + ".json")
        message = str(refused.value)
        assert "longer than 1024 characters" in message and len(message) < 200


def engine_on(store: S3Store) -> Engine:
    return Engine(store, default_registry(), clock=lambda: datetime.now(UTC), workers=2)


class TestCompressedAndMislabelledObjects:
    def test_a_gzip_body_is_one_line_naming_the_header_and_left_as_it_is(
        self, bucket: str, run_cli: Run
    ) -> None:
        s3 = boto_client("s3")
        s3.put_object(
            Bucket=bucket,
            Key="jobs/gz.json",
            Body=gzip.compress(job_body()),
            ContentEncoding="gzip",
            Metadata={"owner": "me"},
            Tagging="team=orders",
        )
        before = snapshot(bucket, "jobs/gz.json")
        url = f"s3://{bucket}/jobs/"
        problem = "Content-Encoding 'gzip': the body is stored compressed"
        tick = run_cli("tick", "--store", url)
        assert tick.returncode == 0 and "1 invalid" in tick.stdout
        (line,) = tick.stderr.splitlines()
        assert f"invalid gz.json: {problem}" in line
        assert line.endswith("(skipped; file left as it is)")
        show = run_cli("show", "gz.json", "--store", url)
        assert show.returncode == 2 and problem in show.stderr
        (row,) = json.loads(run_cli("ls", "--store", url, "--json").stdout)
        assert problem in row["error"]
        assert snapshot(bucket, "jobs/gz.json") == before
        assert s3.get_object_tagging(Bucket=bucket, Key="jobs/gz.json")["TagSet"] == [
            {"Key": "team", "Value": "orders"}
        ]

    def test_a_json_body_labelled_gzip_or_text_runs_as_the_json_it_is(
        self, bucket: str, tmp_path: Path
    ) -> None:
        s3 = boto_client("s3")
        for name, labels in (
            ("gz.json", {"ContentEncoding": "gzip"}),
            ("text.json", {"ContentType": "text/plain"}),
        ):
            body = json.dumps(append_job("@hourly", tmp_path / "ran.txt", name)).encode()
            s3.put_object(Bucket=bucket, Key=f"jobs/{name}", Body=body, **labels)
        with engine_on(S3Store(bucket, "jobs/")) as engine:
            report = engine.tick(datetime.now(UTC) + timedelta(hours=1))
        assert (report.ran, report.invalid) == (2, 0)
        assert sorted((tmp_path / "ran.txt").read_text().split()) == ["gz.json", "text.json"]
        # What the README says a write-back keeps (Content-Encoding) and sets (Content-Type).
        assert snapshot(bucket, "jobs/gz.json")[1]["ContentEncoding"] == "gzip"
        assert snapshot(bucket, "jobs/text.json")[1]["ContentType"] == "application/json"


class TestVersionedBuckets:
    """With versioning, every write is a new version and a delete leaves a delete marker: the
    user's edit must be in the current version, and a delete must stay the current state."""

    @pytest.fixture
    def versioned(self, bucket: str) -> str:
        boto_client("s3").put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
        )
        return bucket

    def script(self, bucket: str, action: str) -> str:
        edit = (
            "doc = json.loads(s3.get_object(Bucket=b, Key=k)['Body'].read())\n"
            "doc['note'] = 'edited'\n"
            "s3.put_object(Bucket=b, Key=k, Body=json.dumps(doc).encode())\n"
        )
        return (
            f"import boto3, json\ns3 = boto3.client('s3')\nb, k = {bucket!r}, 'jobs/v.json'\n"
            + (edit if action == "edit" else "s3.delete_object(Bucket=b, Key=k)\n")
        )

    def place(self, bucket: str, action: str, **fields: Any) -> None:
        script = self.script(bucket, action)
        job = {
            "when": "@hourly",
            **fields,
            "run": {"type": "python", "details": {"script": script}},
        }
        boto_client("s3").put_object(
            Bucket=bucket, Key="jobs/v.json", Body=json.dumps(job).encode()
        )

    def versions(self, bucket: str) -> dict[str, Any]:
        listing: dict[str, Any] = boto_client("s3").list_object_versions(
            Bucket=bucket, Prefix="jobs/v.json"
        )
        return listing

    def test_an_edit_during_the_run_is_in_the_current_version(self, versioned: str) -> None:
        self.place(versioned, "edit", max_number_executions=1)
        with engine_on(S3Store(versioned, "jobs/")) as engine:
            report = engine.tick(datetime.now(UTC) + timedelta(hours=1))
        assert (report.ran, report.failed, report.deleted) == (1, 0, 0)
        current = json.loads(
            boto_client("s3").get_object(Bucket=versioned, Key="jobs/v.json")["Body"].read()
        )
        assert current["note"] == "edited" and current["last_result"]["status"] == "ok"
        assert "claim" not in current
        assert not self.versions(versioned).get("DeleteMarkers")

    def test_a_delete_marker_set_during_the_run_stays_the_current_state(
        self, versioned: str
    ) -> None:
        self.place(versioned, "delete")
        with engine_on(S3Store(versioned, "jobs/")) as engine:
            report = engine.tick(datetime.now(UTC) + timedelta(hours=1))
            assert (report.ran, report.failed) == (1, 0)
            assert engine.tick(datetime.now(UTC) + timedelta(hours=2)).ran == 0
        versions = self.versions(versioned)
        (marker,) = versions["DeleteMarkers"]
        assert marker["IsLatest"]
        assert not any(v["IsLatest"] for v in versions["Versions"])


class TestAMetadataOnlyEdit:
    """S3's console edits an object's metadata by copying the object onto itself: the body,
    and so the ETag, stay the same. The runner's next write must carry the new metadata, not
    put back what it read before."""

    def test_between_runs_survives_the_next_run(self, bucket: str, tmp_path: Path) -> None:
        s3 = boto_client("s3")
        body = json.dumps(append_job("@hourly", tmp_path / "ran.txt", "m")).encode()
        s3.put_object(Bucket=bucket, Key="jobs/m.json", Body=body, Metadata={"owner": "alice"})
        start = datetime.now(UTC)
        with engine_on(S3Store(bucket, "jobs/")) as engine:
            assert engine.tick(start + timedelta(hours=1)).ran == 1
            written = s3.head_object(Bucket=bucket, Key="jobs/m.json")
            time.sleep(2.1)  # S3 times objects to the second
            copied = s3.copy_object(
                Bucket=bucket,
                Key="jobs/m.json",
                CopySource={"Bucket": bucket, "Key": "jobs/m.json"},
                Metadata={"owner": "bob"},
                MetadataDirective="REPLACE",
            )
            assert copied["CopyObjectResult"]["ETag"] == written["ETag"]
            assert engine.tick(start + timedelta(hours=2)).ran == 1
        assert (tmp_path / "ran.txt").read_text() == "m\nm\n"
        assert s3.head_object(Bucket=bucket, Key="jobs/m.json")["Metadata"] == {"owner": "bob"}


class CountingForwarder:
    """A TCP forwarder on loopback that counts the bytes the server sends the client."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.to_client = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            for source, sink, counted in ((client, server, False), (server, client, True)):
                threading.Thread(
                    target=self._pump, args=(source, sink, counted), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
                if counted:
                    with self.lock:
                        self.to_client += len(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def test_an_object_over_the_size_limit_is_never_downloaded_whole(
    bucket: str, moto_endpoint: str
) -> None:
    size = 48 * 1024 * 1024
    boto_client("s3").put_object(Bucket=bucket, Key="jobs/big.json", Body=b" " * size)
    forwarder = CountingForwarder(moto_endpoint)
    try:
        client = boto_client("s3", endpoint_url=forwarder.url)
        store = S3Store(bucket, "jobs/", client=client, max_job_bytes=1024 * 1024)
        with pytest.raises(JobTooLargeError, match=f"{size} bytes is over the 1048576-byte"):
            store.read("big.json")
    finally:
        forwarder.close()
    # What was in flight when the read gave up (socket buffers), never the object.
    assert forwarder.to_client < size // 2


class TestArchivedObjects:
    @pytest.mark.parametrize("storage_class", ["GLACIER", "DEEP_ARCHIVE"])
    def test_an_archived_job_is_one_line_naming_the_class_and_the_rest_run(
        self, bucket: str, run_cli: Run, tmp_path: Path, storage_class: str
    ) -> None:
        # A lifecycle rule archives a job nobody wrote for months; S3 then refuses GetObject
        # (InvalidObjectState) until it is restored.
        s3 = boto_client("s3")
        s3.put_object(
            Bucket=bucket, Key="jobs/cold.json", Body=job_body(), StorageClass=storage_class
        )
        body = json.dumps(append_job("@hourly", tmp_path / "ran.txt", "warm.json")).encode()
        s3.put_object(Bucket=bucket, Key="jobs/warm.json", Body=body)

        def head() -> dict[str, Any]:  # its ETag, size, class, dates: GetObject is refused
            response = s3.head_object(Bucket=bucket, Key="jobs/cold.json")
            response.pop("ResponseMetadata")
            return response

        before = head()
        url = f"s3://{bucket}/jobs/"
        problem = f"cold.json: cannot read: the object is archived ({storage_class}); restore it"
        tick = run_cli("tick", "--store", url, "--now", "2099-01-01T00:00:00Z", "--allow-future")
        assert "2 jobs" in tick.stdout and "1 store errors" in tick.stdout, tick.stdout
        (line,) = [line for line in tick.stderr.splitlines() if "cold.json" in line]
        assert f"store error {problem}" in line and len(line) < 300
        show = run_cli("show", "cold.json", "--store", url)
        assert show.returncode == 2 and problem in show.stderr
        (row,) = [
            r
            for r in json.loads(run_cli("ls", "--store", url, "--json").stdout)
            if r["key"] == "cold.json"
        ]
        assert problem in row["error"]
        assert head() == before
        assert (tmp_path / "ran.txt").read_text().split() == ["warm.json"]
