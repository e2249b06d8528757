"""Job documents: JSON at the edge, frozen dataclasses inside.

A job file is a JSON object. The user owns every field except the runner-owned ones in
``RUNNER_FIELDS``; write-back replaces only those and keeps everything else as it was,
unknown fields included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .actions.base import RunType, Spec, Status
from .schedule import Schedule

__all__ = ["RUNNER_FIELDS", "Claim", "Job", "RunType", "State", "Status", "fingerprint_of"]

#: Fields the runner writes. Everything else belongs to the user.
RUNNER_FIELDS = (
    "execution_count",
    "last_run",
    "last_scheduled",
    "last_result",
    "scheduled_from",
    "claim",
)
DEFAULT_TIMEOUT_SECONDS = 300.0
MAX_NESTING = 64


@dataclass(frozen=True)
class Claim:
    """An occurrence taken by a runner that has not written its result yet."""

    id: str
    scheduled: datetime
    host: str
    pid: int
    started: datetime
    deadline: datetime


@dataclass(frozen=True)
class State:
    """The runner-owned part of a job."""

    execution_count: int = 0
    last_run: datetime | None = None
    last_scheduled: datetime | None = None
    last_result: Mapping[str, Any] | None = None
    #: The schedule fingerprint and the time from which its occurrences count.
    scheduled_from: tuple[str, datetime] | None = None
    claim: Claim | None = None


@dataclass(frozen=True)
class Job:
    key: str
    when: str
    timezone: str
    schedule: Schedule
    run_type: RunType
    action: Spec
    max_number_executions: int = 0
    enabled: bool = True
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    state: State = State()

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(
            {"when": self.when, "timezone": self.timezone, "enabled": self.enabled}
        )

    @property
    def exhausted(self) -> bool:
        limit = self.max_number_executions
        return limit > 0 and self.state.execution_count >= limit


def fingerprint_of(document: Mapping[str, Any]) -> str:
    """What makes a schedule "edited": a change resets the window its occurrences count from.

    ``enabled`` is part of it, so re-enabling a job does not replay what it missed.
    """
    return json.dumps(
        [document.get("when"), document.get("timezone", "UTC"), document.get("enabled", True)]
    )
