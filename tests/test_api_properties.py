"""Properties of scheduling from code over generated arguments, with the CLI as the oracle.

For any arguments, either the call raises one of lambdacron's documented errors (each with
its documented built-in base) in one line and the store is byte for byte as it was, or it
wrote exactly one job, which ``lambdacron validate`` and ``ls`` (real subprocesses) accept
and which ``get`` gives back as it was given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lambdacron
from conftest import Run
from lambdacron.errors import (
    ConflictError,
    InvalidKeyError,
    JobError,
    LambdacronError,
    ScheduleError,
    UsageError,
)
from lambdacron.store import LocalStore, Store
from test_api_arguments import snapshot

#: What a bad argument may raise, with the built-in each is documented to subclass.
DOCUMENTED: dict[type[LambdacronError], type[Exception]] = {
    JobError: ValueError,
    UsageError: ValueError,
    ScheduleError: ValueError,
    InvalidKeyError: ValueError,
    ConflictError: OSError,  # a generated key met again
}

WHEN = [
    "30 18 * * *",
    "*/15 9-17 * * MON-FRI",
    "0 0 29 2 * 2028",
    "30 18 * * * * *",
    "01 01 30 04 * * *",
    "@hourly",
    "@monthly",
    "0 9 ? * MON#2",
    "0 12 L * ?",
    "0 9 15W * ?",
    "0 18 ? * 5L",
    "at(2026-12-01T18:30:00)",
    "at(2031-12-01T17:30:00Z)",
    "at(2031-03-30T02:30:00+02:00)",
    "rate(30 seconds)",
    "rate(5 minutes)",
    "rate(1 day)",
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu", "EST5EDT", "Etc/GMT+5"]
NOT_ZONES = ["Z", "UTC+1", "localtime", "../etc", "", " UTC", "utc", "/etc/localtime", "GMT+1"]
ARNS = ["f", "arn:aws:lambda:eu-central-1:123456789012:function:place-order"]
OMIT = object()

_text = st.text(max_size=12)
_json: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
#: Names starting with "." are reserved; no folder here can end in ".json".
_segment = st.text("abcXYZ019-_.é 中", min_size=1, max_size=8).filter(
    lambda name: not name.startswith(".")
)
_good_key = st.lists(_segment, min_size=0, max_size=3).map(lambda parts: "/".join(parts))
_good_key = st.builds(
    lambda folder, name: f"{folder}/{name}.json" if folder else f"{name}.json", _good_key, _segment
)
#: What a caller's code can hand over by mistake.
_hostile: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.binary(max_size=6),
    st.integers(-(10**80), 10**80),
    st.booleans(),
    st.floats(),
    st.text(st.characters(codec=None, categories=["Cs", "Cc", "Zs", "Lu", "Nd", "Po"]), max_size=8),
    st.datetimes(),
    st.datetimes(timezones=st.timezones()),
    st.dates(),
    st.tuples(_text),
    st.frozensets(st.integers(), max_size=2),
    st.dictionaries(
        st.integers() | st.none() | st.booleans(), st.integers(), min_size=1, max_size=2
    ),
    st.lists(_json, max_size=2),
    st.dictionaries(_text, _json, max_size=2),
)


def _good_action() -> st.SearchStrategy[dict[str, Any]]:
    argument = st.text(st.characters(exclude_characters="\0", codec="utf-8"), max_size=8)
    return st.one_of(
        st.builds(
            lambda first, rest, as_tuple: {
                "command": tuple([first, *rest]) if as_tuple else [first, *rest]
            },
            argument.filter(bool),
            st.lists(argument, max_size=3),
            st.booleans(),
        ),
        st.builds(lambda script: {"python": script}, st.text(max_size=40)),
        st.builds(
            lambda arn, payload, kind: {
                "lambda_arn": arn,
                **({} if payload is OMIT else {"payload": payload}),
                **({} if kind is OMIT else {"invocation_type": kind}),
            },
            st.sampled_from(ARNS),
            st.just(OMIT) | _json,
            st.sampled_from([OMIT, "Event", "RequestResponse"]),
        ),
    )


_extra = st.dictionaries(
    _text.filter(lambda name: name not in {"when", "timezone", "run", "claim"}),
    _json,
    max_size=3,
).filter(lambda extra: not set(extra) & {"max_number_executions", "timeout_seconds"})
#: Extra fields the runner reads: the call may or may not accept their values.
_read_fields = st.dictionaries(
    st.sampled_from(
        [
            "enabled",
            "retry",
            "deadline_seconds",
            "history_limit",
            "on_failure",
            "execution_count",
            "last_run",
            "claim",
            "when",
            "max_number_executions",
        ]
    ),
    _json | _hostile,
    max_size=2,
)


def good_arguments() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"when": st.sampled_from(WHEN), "action": _good_action()},
        optional={
            "timezone": st.sampled_from(ZONES),
            "max_number_executions": st.integers(0, 10**9),
            "timeout_seconds": st.integers(1, 2_592_000) | st.floats(0.001, 2_592_000),
            "extra": _extra,
            "key": _good_key,
        },
    )


def any_arguments() -> st.SearchStrategy[dict[str, Any]]:
    def mixed(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        # Mostly good, so that the calls that pass get past one bad argument to the next.
        return st.sampled_from([True, True, True, False]).flatmap(
            lambda is_good: good if is_good else _hostile
        )

    return st.fixed_dictionaries(
        {
            "when": mixed(st.sampled_from(WHEN) | st.text(max_size=20)),
            "action": st.one_of(
                _good_action(),
                _good_action(),
                st.dictionaries(
                    st.sampled_from(
                        ["command", "python", "lambda_arn", "payload", "invocation_type"]
                    ),
                    _hostile,
                    max_size=3,
                ),
            ),
        },
        optional={
            "timezone": mixed(st.sampled_from(ZONES + NOT_ZONES)),
            "max_number_executions": mixed(st.integers(-5, 10**9 + 5)),
            "timeout_seconds": mixed(st.floats(-1, 3e6) | st.integers(-1, 3_000_000)),
            "extra": mixed(_extra | _read_fields),
            "key": mixed(
                _good_key
                | st.text(max_size=12)
                | st.sampled_from(
                    [
                        "../a.json",
                        "/a.json",
                        "a\\b.json",
                        "a\0.json",
                        "a\x1b.json",
                        " ",
                        "a.JSON",
                        "x" * 1030 + ".json",
                        ".hidden.json",
                        "a//b.json",
                        "a/./b.json",
                        "a",
                    ]
                )
            ),
        },
    )


def plain(value: Any) -> Any:
    """``value`` as JSON holds it: a tuple is a list."""
    if isinstance(value, dict):
        return {name: plain(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def expected_document(arguments: dict[str, Any]) -> dict[str, Any]:
    """The job README's Scheduling from code says ``schedule`` writes for these arguments."""
    action = arguments["action"]
    if "command" in action:
        run = {"type": "command", "details": {"command": list(action["command"])}}
    elif "python" in action:
        run = {"type": "python", "details": {"script": action["python"]}}
    else:
        run = {
            "type": "lambda",
            "details": {
                "arn": action["lambda_arn"],
                # None is the parameter's default: no payload given, so the empty object.
                "payload": {} if action.get("payload") is None else action["payload"],
                "invocation_type": action.get("invocation_type", "Event"),
            },
        }
    document = {
        **(arguments.get("extra") or {}),
        "when": arguments["when"],
        "timezone": arguments.get("timezone", "UTC"),
        "run": run,
    }
    for name in ("max_number_executions", "timeout_seconds"):
        if arguments.get(name) is not None:  # None: the parameter's default, not given
            document[name] = arguments[name]
    return plain(document)


class Accepted:
    """The jobs the calls wrote, checked at the end by the CLI as real subprocesses (one
    process for all of them: a process per example would cost the run its examples)."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}

    def check_with_the_cli(self, run_cli: Run, tmp_path: Path, store: Store) -> None:
        assert self.bodies, "no call was accepted: the strategies generate no good calls"
        folder = tmp_path / "written"
        folder.mkdir()
        paths = []
        for index, body in enumerate(self.bodies.values()):
            path = folder / f"{index}.json"
            path.write_bytes(body)
            paths.append(str(path))
        result = run_cli("validate", *paths)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.splitlines() == [f"{path}: ok" for path in paths]
        listed = run_cli("ls", "--json", "--store", store.url)
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert sorted(row["key"] for row in rows) == sorted(self.bodies)
        assert [row for row in rows if row["status"] in ("invalid", "unreadable")] == []


def call(store: Store, arguments: dict[str, Any]) -> str:
    rest = {name: value for name, value in arguments.items() if name not in ("when", "action")}
    return lambdacron.schedule(store, arguments["when"], **arguments["action"], **rest)


def check_one_call(
    store: Store, arguments: dict[str, Any], accepted: Accepted
) -> LambdacronError | None:
    """The property for one call; the error it was refused with, None if it was accepted."""
    before = snapshot(store)
    try:
        key = call(store, arguments)
    except LambdacronError as exc:
        kind = type(exc)
        assert kind in DOCUMENTED and isinstance(exc, DOCUMENTED[kind]), repr(exc)
        message = str(exc)
        assert message and "\n" not in message and len(message) < 400, message
        assert snapshot(store) == before, f"{kind.__name__}: {message} changed the store"
        return exc
    after = snapshot(store)
    added = {name: body for name, body in after.items() if name not in before}
    files = {name: body for name, body in added.items() if body is not None}
    assert len(files) == 1, added
    assert {name: after[name] for name in before} == before
    assert lambdacron.get(store, key) == expected_document(arguments)
    (body,) = files.values()
    assert body is not None
    accepted.bodies[key] = body
    return None


def run_property(
    store: Store,
    strategy: st.SearchStrategy[dict[str, Any]],
    examples: int,
    run_cli: Run,
    tmp_path: Path,
    must_accept: bool,
) -> None:
    accepted = Accepted()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(arguments=strategy)
    def prop(arguments: dict[str, Any]) -> None:
        error = check_one_call(store, arguments, accepted)
        if must_accept:  # but a key of an earlier example may come again
            assert error is None or isinstance(error, ConflictError), (arguments, error)

    prop()
    print(f"{len(accepted.bodies)} of {examples} calls accepted")
    accepted.check_with_the_cli(run_cli, tmp_path, store)


def _local(tmp_path: Path) -> Store:
    return LocalStore(tmp_path / "jobs", create=True)


def _s3(bucket: str) -> Store:
    from lambdacron.store.s3 import S3Store

    return S3Store(bucket, "jobs/")


class TestEveryCallIsRefusedCleanlyOrWritesAJobTheRunnerAccepts:
    def test_any_arguments_on_a_directory_store(self, run_cli: Run, tmp_path: Path) -> None:
        run_property(_local(tmp_path), any_arguments(), 300, run_cli, tmp_path, False)

    def test_good_arguments_on_a_directory_store(self, run_cli: Run, tmp_path: Path) -> None:
        run_property(_local(tmp_path), good_arguments(), 100, run_cli, tmp_path, True)

    @pytest.mark.aws
    def test_any_arguments_on_s3(self, run_cli: Run, tmp_path: Path, bucket: str) -> None:
        run_property(_s3(bucket), any_arguments(), 40, run_cli, tmp_path, False)

    @pytest.mark.aws
    def test_good_arguments_on_s3(self, run_cli: Run, tmp_path: Path, bucket: str) -> None:
        run_property(_s3(bucket), good_arguments(), 20, run_cli, tmp_path, True)
