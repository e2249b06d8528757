"""Typed reads of a JSON object's fields, each problem collected with its field path.

The job file's validation and each action's ``run.details`` parser share these, so every
message has one shape: ``field.path: must be a string, got a number``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import JobError


class Problems:
    """Collects every problem of a document, so `validate` can report them all at once."""

    def __init__(self) -> None:
        self.items: list[JobError] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(JobError(path, message))


def type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "true/false",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def get(
    doc: Mapping[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    path: str,
    problems: Problems,
    default: Any = None,
    describe: str = "",
) -> Any:
    if name not in doc:
        return default
    value = doc[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python, never in a job file.
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        problems.add(path, f"must be {describe or type_name(kinds[0]())}, got {type_name(value)}")
        return default
    return value


def string_list(
    value: Any, path: str, problems: Problems, argument: bool = False
) -> tuple[str, ...] | None:
    """A list of strings; ``argument``: each is a process argument, which cannot hold NUL."""
    if not isinstance(value, list):
        return None
    bad = False
    for i, item in enumerate(value):
        if not isinstance(item, str):
            problems.add(f"{path}[{i}]", f"must be a string, got {type_name(item)}")
            bad = True
        elif argument and "\0" in item:
            problems.add(f"{path}[{i}]", NUL)
            bad = True
    return None if bad else tuple(value)


NUL = "contains a NUL character, which no process argument can hold"


def string_map(doc: Mapping[str, Any], path: str, problems: Problems) -> dict[str, str]:
    env = get(doc, "env", dict, f"{path}.env", problems, {}, "an object of strings")
    result: dict[str, str] = {}
    for name, value in env.items():
        if not isinstance(value, str):
            problems.add(f"{path}.env.{name}", f"must be a string, got {type_name(value)}")
        elif not name or "=" in name or "\0" in name or "\0" in value:
            problems.add(f"{path}.env", f"{name!r} is not a valid environment variable")
        else:
            result[name] = value
    return result
