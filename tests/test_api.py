"""Scheduling from code, on every store: what the API refuses, and what it promises."""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import pytest

import lambdacron
from helpers import FakeClock, utc
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.errors import ConflictError, JobError, JobNotFoundError, UsageError
from lambdacron.store import Store

JOB = {"when": "@hourly", "run": {"type": "command", "details": {"command": ["true"]}}}


class TestAnExistingKeyIsAConflictOnEveryStore:
    def test_adding_the_same_job_twice(self, store: Store) -> None:
        lambdacron.add(store, JOB, "a.json")
        with pytest.raises(ConflictError):
            lambdacron.add(store, JOB, "a.json")

    def test_scheduling_the_same_job_twice(self, store: Store) -> None:
        arguments: dict[str, Any] = {"command": ["true"], "key": "order-1.json"}
        lambdacron.schedule(store, "@hourly", **arguments)
        with pytest.raises(ConflictError):
            lambdacron.schedule(store, "@hourly", **arguments)
        assert lambdacron.get(store, "order-1.json")["run"]["details"]["command"] == ["true"]


class TestWhatNoReaderCouldReadIsRefusedAtTheCall:
    @pytest.mark.parametrize(
        "payload",
        [math.nan, math.inf, -math.inf, {"price": math.nan}, [1.0, math.inf]],
        ids=["nan", "inf", "-inf", "nested-nan", "nested-inf"],
    )
    def test_nan_and_infinity_in_a_payload(self, store: Store, payload: Any) -> None:
        with pytest.raises(JobError):
            lambdacron.schedule(store, "at(2026-12-01T18:30:00Z)", lambda_arn="f", payload=payload)
        assert list(store.list()) == []

    @pytest.mark.parametrize(
        "extra",
        [{"note": "\ud800"}, {"big": 10**100}, {"price": math.nan}],
        ids=["surrogate", "huge-int", "nan"],
    )
    def test_values_out_of_range_in_extra_fields(self, store: Store, extra: Any) -> None:
        with pytest.raises(JobError):
            lambdacron.schedule(store, "@hourly", command=["true"], extra=extra)
        assert list(store.list()) == []

    @pytest.mark.parametrize("where", ["payload", "extra"])
    @pytest.mark.parametrize("depth", [200, 5000, 50_000])
    def test_nesting_too_deep_for_any_reader(self, store: Store, where: str, depth: int) -> None:
        # Deeper than the interpreter's recursion limit too: one clear JobError, not a crash.
        deep: Any = []
        for _ in range(depth):
            deep = [deep]
        arguments: dict[str, Any] = (
            {"payload": deep} if where == "payload" else {"extra": {"x": deep}}
        )
        with pytest.raises(JobError, match="nested too deeply"):
            lambdacron.schedule(store, "@hourly", lambda_arn="f", **arguments)
        assert list(store.list()) == []

    @pytest.mark.parametrize("name", ["when", "timezone", "run", "max_number_executions"])
    def test_extra_fields_that_clash_with_the_call(self, store: Store, name: str) -> None:
        with pytest.raises(UsageError, match=name):
            lambdacron.schedule(store, "@hourly", command=["true"], extra={name: "x"})
        assert list(store.list()) == []

    def test_every_accepted_job_reads_back_as_valid(self, store: Store) -> None:
        key = lambdacron.schedule(
            store, "@hourly", lambda_arn="f", payload={"price": 1e300, "id": 2**60}
        )
        assert lambdacron.get(store, key)["run"]["details"]["payload"]["id"] == 2**60


def test_cancel_is_final_even_while_runners_write_the_job(store: Store) -> None:
    """A runner rewriting the job (claims, results: conditional writes on the version it
    read) races each cancel; each cancel still ends with the job gone, and the runner's
    next write finds it deleted rather than bringing it back."""
    failures: list[BaseException] = []
    raced = 0

    def runner(key: str, stop: threading.Event, writing: threading.Event) -> None:
        nonlocal raced
        count = 0
        while not stop.is_set():
            try:
                seen = store.read(key)
                count += 1
                body = json.dumps({**JOB, "execution_count": count}).encode()
                store.write(key, body, seen.version)
                raced += 1
                writing.set()
            except JobNotFoundError:
                return
            except ConflictError:
                continue

    for round_ in range(10):
        key = f"job-{round_}.json"
        lambdacron.add(store, JOB, key)
        stop, writing = threading.Event(), threading.Event()
        writer = threading.Thread(target=runner, args=(key, stop, writing))
        writer.start()
        assert writing.wait(10)
        try:
            lambdacron.cancel(store, key)
        except BaseException as exc:  # collected and asserted below
            failures.append(exc)
        finally:
            stop.set()
            writer.join()
        with pytest.raises(JobNotFoundError):
            store.read(key)
    assert failures == [] and raced > 0
    with pytest.raises(JobNotFoundError):
        lambdacron.cancel(store, "job-0.json")


def test_cancel_while_ticks_run_the_job(store: Store) -> None:
    clock = FakeClock(utc(2026, 1, 1))
    lambdacron.add(store, {**JOB, "when": "* * * * *"}, "j.json")
    with Engine(store, default_registry(), clock=clock) as engine:
        engine.tick(utc(2026, 1, 1, 0, 1))
        lambdacron.cancel(store, "j.json")
        report = engine.tick(utc(2026, 1, 1, 0, 2))
    assert report.ran == 0
    with pytest.raises(JobNotFoundError):
        store.read("j.json")


def test_a_job_larger_than_the_store_accepts_is_refused_at_the_call(store: Store) -> None:
    store.max_job_bytes = 500
    with pytest.raises(JobError, match="over the store's 500-byte limit"):
        lambdacron.schedule(store, "@hourly", command=["true"], extra={"pad": "x" * 600})
    assert list(store.list()) == []
    lambdacron.schedule(store, "@hourly", command=["true"], extra={"pad": "x" * 100})


def test_a_document_the_api_wrote_is_plain_json(store: Store) -> None:
    key = lambdacron.schedule(store, "@hourly", command=["true"], extra={"customer": "c-42"})
    body = store.read(key).body
    assert json.loads(body)["customer"] == "c-42"


def test_a_new_job_carrying_a_runners_claim_is_refused(store: Store) -> None:
    with pytest.raises(JobError) as refused:
        lambdacron.add(store, {**JOB, "claim": {"id": 5}}, "copied.json")
    assert (refused.value.path, refused.value.message) == (
        "claim",
        "a new job must not carry a runner's claim",
    )
    assert list(store.list()) == []


class TestArgumentsOfTheWrongShapeAreOneClearError:
    @pytest.mark.parametrize("command", ["echo hi", b"echo hi"])
    def test_a_command_given_as_one_string_is_refused(self, store: Store, command: Any) -> None:
        # A string is a sequence of one-letter strings: taken as the argument list, it would
        # store a job that runs "e" with the arguments "c", "h", "o"...
        with pytest.raises(UsageError, match="command"):
            lambdacron.schedule(store, "@hourly", command=command)
        assert list(store.list()) == []

    @pytest.mark.parametrize("document", [[1, 2], "{}", None, 5])
    def test_a_document_that_is_not_a_mapping_is_a_job_error(
        self, store: Store, document: Any
    ) -> None:
        with pytest.raises(JobError, match="JSON object"):
            lambdacron.add(store, document, "a.json")
        assert list(store.list()) == []
