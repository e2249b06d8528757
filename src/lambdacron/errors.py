"""The exceptions lambdacron raises.

Every exception derives from one root, and each also subclasses the built-in
that describes it best, so callers may catch either::

    LambdacronError
     ├── ScheduleError (ValueError)      a `when` expression or time zone is invalid
     ├── JobError (ValueError)           a job document breaks the format (carries a field path)
     ├── UsageError (ValueError)         a CLI or API argument is wrong
     ├── StoreError (OSError)            the job store failed
     │    ├── InvalidKeyError (ValueError)    a key escapes the store or is not a job key
     │    ├── JobNotFoundError (KeyError)     the key does not exist (any more)
     │    ├── UnreadableJobError              the file cannot be read as a job as it is stored
     │    │    └── JobTooLargeError           it is larger than the store's size limit
     │    └── ConflictError                   a conditional write lost: someone else changed the job
     ├── DeliveryError (OSError)         planned occurrences could not be queued for delivery
     └── DeployError (OSError)           AWS refused a step of ``deploy`` or ``undeploy``

Third-party errors (OSError from the file system, botocore's ClientError) are
translated at the store boundary with ``raise StoreError(...) from exc``, and at the deploy
boundary into DeployError likewise.
"""

from __future__ import annotations

#: The longest message a schedule, job or usage error carries. Such messages quote the value
#: given, and a value is whatever a file or a caller holds: quoted whole, a 100 KB ``when``
#: made a line nobody could read. The start and the end of a longer one are kept.
MAX_MESSAGE_CHARS = 400
#: The same for the field path a job error names (a field's name is the file's too).
MAX_PATH_CHARS = 120


def clipped(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` with its middle cut to ``...`` when it is longer than ``limit``."""
    if len(text) <= limit:
        return text
    keep = limit - len(" ... ")
    head = keep * 2 // 3
    return f"{text[:head]} ... {text[len(text) - (keep - head) :]}"


class LambdacronError(Exception):
    """Root of every exception raised by lambdacron."""


class ScheduleError(LambdacronError, ValueError):
    """A schedule expression or time zone cannot be used.

    The message names the field, the bad value and the allowed form,
    e.g. ``minute: 75 is out of range 0-59``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(clipped(message))


class JobError(LambdacronError, ValueError):
    """A job document is invalid; ``path`` is the dotted field path, e.g. ``run.details``."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = clipped(message)
        super().__init__(
            f"{clipped(path, MAX_PATH_CHARS)}: {self.message}" if path else self.message
        )


class UsageError(LambdacronError, ValueError):
    """An argument given to the CLI or the Python API is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(clipped(message))


class StoreError(LambdacronError, OSError):
    """The job store could not complete an operation."""


class InvalidKeyError(StoreError, ValueError):
    """A key is not a valid job key for this store (it escapes the root, or is not ``*.json``)."""


class JobNotFoundError(StoreError, KeyError):
    """The job does not exist (it may have been deleted meanwhile)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "job not found"


class UnreadableJobError(StoreError):
    """The job file is there but cannot be a job as it is stored (too large, or an S3 object
    stored compressed): like an invalid file, it is reported and left as it is."""


class JobTooLargeError(UnreadableJobError):
    """The job file is larger than the store accepts; it was not read."""


class ConflictError(StoreError):
    """A conditional write or delete lost: the job changed since it was read."""

    #: An earlier attempt of the same request was sent, so the precondition may have
    #: failed on that attempt's own effect (a write whose answer was lost).
    retried: bool = False


class DeliveryError(LambdacronError, OSError):
    """Planned occurrences could not be handed to their delivery (the SQS queue refused
    them); they cost lateness only, as the next tick runs them."""


class DeployError(LambdacronError, OSError):
    """AWS refused a step of deploy or undeploy; the message names the step and AWS's code."""
