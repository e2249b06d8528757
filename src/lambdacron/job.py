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
from functools import cached_property
from typing import Any

from .actions.base import RunType, Spec, Status
from .notify import Destination, NoticeReason
from .schedule import Schedule

__all__ = [
    "RUNNER_FIELDS",
    "Claim",
    "Job",
    "Retry",
    "RetryPolicy",
    "RunType",
    "State",
    "Status",
    "Telling",
    "fingerprint_of",
]

#: Fields the runner writes. Everything else belongs to the user.
RUNNER_FIELDS = (
    "execution_count",
    "last_run",
    "last_scheduled",
    "last_result",
    "scheduled_from",
    "claim",
    "retry_pending",
    "history",
)
DEFAULT_TIMEOUT_SECONDS = 300.0
DEFAULT_HISTORY_LIMIT = 5
MAX_NESTING = 64


@dataclass(frozen=True)
class Telling:
    """The notice a claim is held for: its occurrence has ended (its result is written) and
    the claim is released once the notice is out. ``attempts`` as the notice counts them;
    ``to``: where it is owed, as the runner that ended the occurrence resolved it (the
    job's ``on_failure`` or that runner's default), so that a runner taking the claim over
    without the same default still sends it there. None in claims written without it."""

    reason: NoticeReason
    attempts: int
    to: Destination | None = None


@dataclass(frozen=True)
class Claim:
    """An occurrence taken by a runner that has not written its result yet, or (``telling``)
    one whose result is written but whose failure notice is not yet sent."""

    id: str
    scheduled: datetime
    host: str
    pid: int
    started: datetime
    deadline: datetime
    #: Which attempt at the occurrence this run is: 1, then one more for each retry.
    attempt: int = 1
    #: Run by hand (``lambdacron run``), out of schedule: it moves no schedule window.
    manual: bool = False
    telling: Telling | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """``retry``: how an occurrence whose run ended failed, timeout or error is tried again.

    ``attempts`` counts every try, the first included: 1 is no retry. The wait before try
    ``n + 1`` is drawn uniformly from ``[0, min(max_backoff, backoff * 2 ** (n - 1))]``
    (exponential backoff with full jitter, so runners that failed together do not retry
    together)."""

    attempts: int = 1
    backoff_seconds: float = 30.0
    max_backoff_seconds: float = 900.0
    #: Retry an interrupted run too; off by default, since it may have done its work.
    on_interrupted: bool = False


@dataclass(frozen=True)
class Retry:
    """A retry waiting for its time: attempt ``attempt`` at occurrence ``scheduled``."""

    scheduled: datetime
    attempt: int
    at: datetime


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
    #: The retry of an occurrence that is still to come; while it waits, the job waits.
    retry: Retry | None = None


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
    #: None: the runner's default (``LAMBDACRON_RETRY``), else no retry.
    retry: RetryPolicy | None = None
    #: An occurrence that cannot start within this many seconds of its time is missed;
    #: None: the runner's default; 0: no deadline.
    deadline_seconds: float | None = None
    #: Where notices go; None: the runner's default (``LAMBDACRON_ON_FAILURE``).
    on_failure: Destination | None = None
    history_limit: int = DEFAULT_HISTORY_LIMIT

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint_of(
            {"when": self.when, "timezone": self.timezone, "enabled": self.enabled}
        )

    @property
    def exhausted(self) -> bool:
        """Used up its runs: it never runs again (a retry still waiting is not a new run)."""
        limit = self.max_number_executions
        return limit > 0 and self.state.execution_count >= limit and self.state.retry is None


def fingerprint_of(document: Mapping[str, Any]) -> str:
    """What makes a schedule "edited": a change resets the window its occurrences count from.

    ``enabled`` is part of it, so re-enabling a job does not replay what it missed.
    """
    return json.dumps(
        [document.get("when"), document.get("timezone", "UTC"), document.get("enabled", True)]
    )
