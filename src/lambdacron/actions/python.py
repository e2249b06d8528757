"""``"type": "python"``: a script run by a separate interpreter (this one's executable).

The source goes in on stdin (``python - ARGS``) rather than in argv, so a large script
cannot hit the kernel's argument-size limit, and no temporary file is left behind.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..fields import Problems, get, string_list, string_map, type_name
from .base import Action, DetailsSpec, Result, RunContext, RunType, Spec
from .process import run_process


@dataclass(frozen=True)
class PythonSpec(Spec):
    script: str
    args: tuple[str, ...] = ()


def parse_details(details: Mapping[str, Any], problems: Problems) -> PythonSpec | None:
    script = get(details, "script", str, "run.details.script", problems)
    if "script" not in details:
        problems.add("run.details.script", "is required: the Python source to run")
    args: tuple[str, ...] | None = ()
    if "args" in details:
        args = string_list(details["args"], "run.details.args", problems, argument=True)
        if not isinstance(details["args"], list):
            problems.add(
                "run.details.args", f"must be a list of strings, got {type_name(details['args'])}"
            )
    env = string_map(details, "run.details", problems)
    if script is None or args is None:
        return None
    return PythonSpec(script, args, env=env)


DETAILS = DetailsSpec(("script", "args", "env"), parse_details)


class PythonAction(Action):
    run_type = RunType.PYTHON

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable or sys.executable

    def run(self, spec: Spec, context: RunContext) -> Result:
        assert isinstance(spec, PythonSpec)
        return run_process(
            [self.executable, "-", *spec.args],
            env={**spec.env, **context.environment()},
            timeout=context.timeout,
            started=context.started,
            stdin=spec.script,
        )
