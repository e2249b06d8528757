"""Scheduling from code with what a caller's code can pass: every bad call is one of
lambdacron's own errors naming the argument, and leaves the store as it was; every good
call writes a job the runner accepts and ``get`` gives back."""

from __future__ import annotations

import datetime as dt
import enum
import math
import os
from pathlib import Path
from typing import Any

import pytest

import lambdacron
from lambdacron.errors import InvalidKeyError, JobError, LambdacronError, UsageError
from lambdacron.store import LocalStore, Store


def snapshot(store: Store) -> dict[str, bytes | None]:
    """Everything in the store a job key can reach, byte for byte: every file and every
    folder of a directory store (a folder made and left empty is a change), every object
    of an S3 store. The runner's own ``.lambdacron/`` is not the caller's."""
    if isinstance(store, LocalStore):
        found: dict[str, bytes | None] = {}
        for folder, folders, files in os.walk(store.root):
            folders[:] = [name for name in folders if name != ".lambdacron"]
            for name in folders:
                found[os.path.join(folder, name) + "/"] = None
            for name in files:
                with open(os.path.join(folder, name), "rb") as file:
                    found[os.path.join(folder, name)] = file.read()
        return found
    from lambdacron.store.s3 import S3Store

    assert isinstance(store, S3Store)
    pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    return {
        item["Key"]: store.client.get_object(Bucket=store.bucket, Key=item["Key"])["Body"].read()
        for page in pages
        for item in page.get("Contents", ())
        if "/.lambdacron/" not in item["Key"]
    }


def refused(store: Store, error: type[LambdacronError], call: Any, *words: str) -> str:
    """``call()`` raises ``error``, one line naming each of ``words``, and changes nothing."""
    before = snapshot(store)
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and len(message) < 300, message
    for word in words:
        assert word in message, message
    assert snapshot(store) == before
    return message


def circular() -> Any:
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    return loop


class Weekday(enum.IntEnum):
    MONDAY = 1


class TestTheStoreArgument:
    @pytest.mark.parametrize("bad", [None, "./jobs", Path("jobs"), object()])
    def test_what_is_no_store_is_a_usage_error(self, bad: Any) -> None:
        for name, call in (
            ("schedule", lambda: lambdacron.schedule(bad, "@hourly", command=["true"])),
            ("add", lambda: lambdacron.add(bad, {"when": "@hourly"})),
            ("get", lambda: lambdacron.get(bad, "a.json")),
            ("cancel", lambda: lambdacron.cancel(bad, "a.json")),
        ):
            with pytest.raises(UsageError, match=rf"^{name}\(\): store must be "):
                call()


class TestTheRunArguments:
    @pytest.mark.parametrize(
        "command",
        [123, {"echo", "hi"}, {"echo": 1}, iter(["true"]), None.__class__],
        ids=["int", "set", "dict", "iterator", "type"],
    )
    def test_a_command_that_is_no_argument_list(self, store: Store, command: Any) -> None:
        # A set would run its arguments in hash order, a dict its keys: never what was meant.
        refused(
            store,
            UsageError,
            lambda: lambdacron.schedule(store, "@hourly", command=command),
            "command",
            "list of arguments",
        )

    def test_a_tuple_is_an_argument_list(self, store: Store) -> None:
        key = lambdacron.schedule(store, "@hourly", command=("echo", "hi"))
        assert lambdacron.get(store, key)["run"]["details"]["command"] == ["echo", "hi"]

    @pytest.mark.parametrize(
        "action", [{"command": ["true"]}, {"python": "print(1)"}], ids=["command", "python"]
    )
    @pytest.mark.parametrize(
        "lambda_only",
        [{"payload": {"order": 1}}, {"payload": []}, {"invocation_type": "RequestResponse"}],
        ids=["payload", "empty-payload", "invocation_type"],
    )
    def test_lambda_arguments_for_another_kind_of_job(
        self, store: Store, action: dict[str, Any], lambda_only: dict[str, Any]
    ) -> None:
        # Dropped in silence, the order's payload would never reach anything.
        (name,) = lambda_only
        refused(
            store,
            UsageError,
            lambda: lambdacron.schedule(store, "@hourly", **action, **lambda_only),
            name,
            "lambda_arn",
        )

    @pytest.mark.parametrize("extra", [[("note", 1)], "note", 5], ids=["pairs", "str", "int"])
    def test_extra_that_is_no_mapping(self, store: Store, extra: Any) -> None:
        refused(
            store,
            UsageError,
            lambda: lambdacron.schedule(store, "@hourly", command=["true"], extra=extra),
            "extra",
        )


class TestValuesJsonCannotHoldAsGiven:
    @pytest.mark.parametrize(
        ("arguments", "path"),
        [
            ({"payload": circular()}, "run.details.payload.self"),
            ({"extra": {"note": circular()}}, "note.self"),
            ({"payload": [[circular()]]}, "run.details.payload[0][0].self"),
        ],
        ids=["payload", "extra", "nested"],
    )
    def test_a_value_that_holds_itself(
        self, store: Store, arguments: dict[str, Any], path: str
    ) -> None:
        message = refused(
            store,
            JobError,
            lambda: lambdacron.schedule(store, "@hourly", lambda_arn="f", **arguments),
            path,
            "holds itself",
        )
        assert message.startswith(f"{path}: ")

    @pytest.mark.parametrize("depth", [900, 980])
    def test_a_value_json_refuses_at_the_bottom_of_deep_nesting(
        self, store: Store, depth: int
    ) -> None:
        # Within the encoder's reach, so it is the NaN the encoder trips on: naming its place
        # must not exhaust the stack either.
        deep: Any = [math.nan]
        for _ in range(depth):
            deep = [deep]
        refused(
            store,
            JobError,
            lambda: lambdacron.schedule(store, "@hourly", lambda_arn="f", payload=deep),
            "run.details.payload",
        )

    @pytest.mark.parametrize(
        ("payload", "path", "name"),
        [
            ({1: "a"}, "run.details.payload", "1"),
            ({"order": {None: 1}}, "run.details.payload.order", "None"),
            ({"x": [{True: 1}]}, "run.details.payload.x[0]", "True"),
            ({2.5: 1}, "run.details.payload", "2.5"),
            ({math.nan: 1}, "run.details.payload", "nan"),
            ({(1, 2): 1}, "run.details.payload", "(1, 2)"),
        ],
    )
    def test_a_field_name_that_is_not_text(
        self, store: Store, payload: Any, path: str, name: str
    ) -> None:
        # JSON would turn 1 into "1": get() would give back another payload than was given.
        message = refused(
            store,
            JobError,
            lambda: lambdacron.schedule(store, "@hourly", lambda_arn="f", payload=payload),
            "field names must be text",
            name,
        )
        assert message.startswith(f"{path}: ")

    @pytest.mark.parametrize(
        ("value", "words"),
        [
            (dt.datetime(2026, 12, 1, 18, 30), ("datetime", "ISO 8601")),
            (
                dt.datetime(2026, 12, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=45))),
                ("datetime",),
            ),
            (dt.date(2026, 12, 1), ("date", "ISO 8601")),
            (b"bytes", ("bytes",)),
            ({1, 2}, ("set",)),
            (math.nan, ("NaN",)),
            (-math.inf, ("-inf",)),
            (10**5000, ("more than 64 digits",)),
        ],
        ids=["naive", "aware", "date", "bytes", "set", "nan", "-inf", "huge"],
    )
    @pytest.mark.parametrize("where", ["when", "timezone", "payload", "extra"])
    def test_a_value_of_no_json_type(
        self, store: Store, value: Any, words: tuple[str, ...], where: str
    ) -> None:
        arguments: dict[str, Any] = {"when": "@hourly", "lambda_arn": "f"}
        path = {"payload": "run.details.payload", "extra": "note"}.get(where, where)
        if where == "extra":
            arguments["extra"] = {"note": value}
        else:
            arguments[where] = value
        message = refused(store, JobError, lambda: lambdacron.schedule(store, **arguments), *words)
        assert message.startswith(f"{path}: "), message

    def test_json_subclasses_are_their_json_values(self, store: Store) -> None:
        key = lambdacron.schedule(
            store, "@hourly", lambda_arn="f", payload={"day": Weekday.MONDAY, "items": ("a",)}
        )
        assert lambdacron.get(store, key)["run"]["details"]["payload"] == {
            "day": 1,
            "items": ["a"],
        }


class TestKeysADirectoryStoreCannotHold:
    """Key rules every store shares are in test_api's neighbours; these are a directory's."""

    @pytest.fixture
    def local(self, tmp_path: Path) -> LocalStore:
        return LocalStore(tmp_path / "jobs", create=True)

    @pytest.mark.parametrize(
        "key",
        ["orders.json/1.json", "a/b.json/c/1.json", "x.json/y.json/z.json"],
    )
    def test_a_folder_named_like_a_job(self, local: LocalStore, key: str) -> None:
        # The folder would be listed as a job that is "a directory, not a regular file":
        # invalid at every tick.
        refused(
            local,
            InvalidKeyError,
            lambda: lambdacron.schedule(local, "@hourly", command=["true"], key=key),
            "ends in .json",
        )

    @pytest.mark.parametrize(
        "key",
        [
            "d/" + "a" * 300 + ".json",
            "é" * 200 + ".json",
            "a" * 251 + ".json",
            "f" * 256 + "/a.json",
        ],
        ids=["long-name", "long-utf8-name", "one-byte-over", "long-folder"],
    )
    def test_a_name_longer_than_the_file_system_takes(self, local: LocalStore, key: str) -> None:
        refused(
            local,
            InvalidKeyError,
            lambda: lambdacron.schedule(local, "@hourly", command=["true"], key=key),
            "bytes",
        )

    def test_the_longest_name_it_takes(self, local: LocalStore) -> None:
        key = "a" * 250 + ".json"  # 255 bytes, the file system's limit
        assert lambdacron.schedule(local, "@hourly", command=["true"], key=key) == key
        assert lambdacron.get(local, key)["when"] == "@hourly"
