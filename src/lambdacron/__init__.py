"""lambdacron: dynamic cron-like jobs stored as JSON files.

The public surface is small; everything else lives in modules that may change.
"""

from __future__ import annotations

from ._version import __version__
from .api import add, cancel, get, schedule
from .errors import (
    ConflictError,
    DeliveryError,
    DeployError,
    InvalidKeyError,
    JobError,
    JobNotFoundError,
    JobTooLargeError,
    LambdacronError,
    ScheduleError,
    StoreError,
    UnreadableJobError,
    UsageError,
)
from .handler import lambda_handler
from .schedule import Schedule, parse
from .store import Store, open_store

__all__ = [
    "ConflictError",
    "DeliveryError",
    "DeployError",
    "InvalidKeyError",
    "JobError",
    "JobNotFoundError",
    "JobTooLargeError",
    "LambdacronError",
    "Schedule",
    "ScheduleError",
    "Store",
    "StoreError",
    "UnreadableJobError",
    "UsageError",
    "__version__",
    "add",
    "cancel",
    "get",
    "lambda_handler",
    "open_store",
    "parse",
    "schedule",
]
