"""The action interface: how a job's ``run`` is carried out.

An action never raises for a job's own failure: a run that cannot start (a missing
executable or directory, a NUL in an argument), a non-zero exit or a Python exception are
all results. It raises only for bugs in lambdacron itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..fields import Problems
from ..times import iso


class RunType(StrEnum):
    """A job's ``run.type``: one module of this package each."""

    COMMAND = "command"
    PYTHON = "python"
    LAMBDA = "lambda"


class Status(StrEnum):
    """How a run ended, as recorded in ``last_result.status``."""

    OK = "ok"
    FAILED = "failed"  # the action ran and reported failure (non-zero exit, FunctionError)
    TIMEOUT = "timeout"  # killed after timeout_seconds
    ERROR = "error"  # the action could not be started (missing executable, AWS error)
    INTERRUPTED = "interrupted"  # the runner died after claiming the occurrence
    MISSED = "missed"  # it could not start within its deadline_seconds; never run


@dataclass(frozen=True)
class Spec:
    """What a job's ``run.details`` say, parsed by the module of its ``run.type``.

    ``env``: variables the run adds to its environment (their secrets are redacted too)."""

    env: Mapping[str, str] = field(default_factory=dict, kw_only=True)


@dataclass(frozen=True)
class DetailsSpec:
    """How one ``run.type`` reads its ``run.details``: the fields it knows (any other is a
    mistake: a typo there would silently change what runs) and the parser, which returns
    the spec or None, each problem collected with its path."""

    fields: tuple[str, ...]
    parse: Callable[[Mapping[str, Any], Problems], Spec | None]


#: How much of a run's output is kept: the last 4 KiB of stdout and stderr together,
#: redacted before the cut (see ``lambdacron.redact``).
OUTPUT_LIMIT = 4096


@dataclass(frozen=True)
class RunContext:
    """What a run knows about its occurrence. Targets get it too, to de-duplicate."""

    key: str
    scheduled: datetime
    execution: int
    timeout: float
    started: datetime

    def environment(self) -> dict[str, str]:
        return {
            "LAMBDACRON_JOB": self.key,
            "LAMBDACRON_SCHEDULED_TIME": iso(self.scheduled),
            "LAMBDACRON_EXECUTION": str(self.execution),
        }


@dataclass(frozen=True)
class Result:
    status: Status
    started: datetime
    duration_ms: int
    exit_code: int | None = None
    output: str = ""
    error: str | None = None
    #: How long after its scheduled occurrence the run started; set by the engine.
    lateness_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "status": self.status.value,
            "exit_code": self.exit_code,
            "started": iso(self.started),
            "duration_ms": self.duration_ms,
            "output": self.output,
            "error": self.error,
        }
        if self.lateness_ms is not None:
            record["lateness_ms"] = self.lateness_ms
        return record


class Action(ABC):
    run_type: RunType

    @abstractmethod
    def run(self, spec: Spec, context: RunContext) -> Result:
        """Carry out ``spec``; block until it ends or times out."""


ActionRegistry = Mapping[RunType, Action]
