"""``"type": "command"``: an argv list run without a shell."""

from __future__ import annotations

from ..job import ActionSpec, CommandSpec, RunType
from .base import Action, Result, RunContext
from .process import run_process


class CommandAction(Action):
    run_type = RunType.COMMAND

    def run(self, spec: ActionSpec, context: RunContext) -> Result:
        assert isinstance(spec, CommandSpec)
        return run_process(
            spec.argv,
            env={**spec.env, **context.environment()},
            timeout=context.timeout,
            started=context.started,
            cwd=spec.cwd,
        )
