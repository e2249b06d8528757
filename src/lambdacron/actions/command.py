"""``"type": "command"``: an argv list run without a shell."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..fields import NUL, Problems, get, string_list, string_map, type_name
from .base import Action, DetailsSpec, Result, RunContext, RunType, Spec
from .process import run_process


@dataclass(frozen=True)
class CommandSpec(Spec):
    argv: tuple[str, ...]
    cwd: str | None = None


def parse_details(details: Mapping[str, Any], problems: Problems) -> CommandSpec | None:
    path = "run.details.command"
    if "command" not in details:
        problems.add(path, 'is required: an argument list such as ["ls", "-Fal"]')
        return None
    command = details["command"]
    if isinstance(command, str):
        problems.add(
            path,
            f'must be a list of arguments such as ["ls", "-Fal"], not a string; for shell syntax '
            f'write ["bash", "-c", {json.dumps(command)}]',
        )
        return None
    if not isinstance(command, list):
        problems.add(path, f"must be a list of strings, got {type_name(command)}")
        return None
    if not command:
        problems.add(path, "must not be empty")
        return None
    argv = string_list(command, path, problems, argument=True)
    if argv is not None and not argv[0]:
        problems.add(f"{path}[0]", "the program name must not be empty")
    cwd = get(details, "cwd", str, "run.details.cwd", problems)
    if cwd is not None and not cwd:
        problems.add("run.details.cwd", "must not be empty; leave it out for the runner's own")
    elif cwd is not None and "\0" in cwd:
        problems.add("run.details.cwd", NUL)
    env = string_map(details, "run.details", problems)
    return CommandSpec(argv, cwd, env=env) if argv else None


DETAILS = DetailsSpec(("command", "cwd", "env"), parse_details)


class CommandAction(Action):
    run_type = RunType.COMMAND

    def run(self, spec: Spec, context: RunContext) -> Result:
        assert isinstance(spec, CommandSpec)
        return run_process(
            spec.argv,
            env={**spec.env, **context.environment()},
            timeout=context.timeout,
            started=context.started,
            cwd=spec.cwd,
        )
