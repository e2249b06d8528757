"""``"type": "python"``: a script run by a separate interpreter (this one's executable).

The source goes in on stdin (``python - ARGS``) rather than in argv, so a large script
cannot hit the kernel's argument-size limit, and no temporary file is left behind.
"""

from __future__ import annotations

import sys

from ..job import ActionSpec, PythonSpec, RunType
from .base import Action, Result, RunContext
from .process import run_process


class PythonAction(Action):
    run_type = RunType.PYTHON

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable or sys.executable

    def run(self, spec: ActionSpec, context: RunContext) -> Result:
        assert isinstance(spec, PythonSpec)
        return run_process(
            [self.executable, "-", *spec.args],
            env={**spec.env, **context.environment()},
            timeout=context.timeout,
            started=context.started,
            stdin=spec.script,
        )
