"""Telling someone: the notice an occurrence owes once it has ended not ok, sent to its
destination (the job's ``on_failure``, else the runner's default). The notifier retries a
few times and never raises; what it could not deliver is an event of its own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ..jobfile import JobFile
from ..notify import Destination, Notice, NoticeKind, Notifier
from .outcomes import Ending, Policies
from .report import JobEvent, Outcome


class Teller:
    def __init__(
        self,
        store_url: str,
        policies: Policies,
        clock: Callable[[], datetime],
        notifier: Notifier | None = None,
        *,
        commands: bool = True,
    ) -> None:
        self.store_url = store_url
        #: Whether this runner runs commands (``LAMBDACRON_ALLOWED_TYPES``). When it does
        #: not, neither does a notice: a command destination written in a job file would
        #: let whoever writes job files run commands after all. Its own default is the
        #: operator's, and is sent.
        self.commands = commands
        self.policies = policies
        self.clock = clock
        self._notifier = notifier

    @property
    def notifier(self) -> Notifier:
        if self._notifier is None:  # made on first use: boto3 only when a notice goes out
            self._notifier = Notifier()
        return self._notifier

    def tell(
        self, file: JobFile, scheduled: datetime, ending: Ending, to: Destination | None = None
    ) -> JobEvent | None:
        """Send the notice ``ending`` owes, to ``to`` (where it was found owed when the
        occurrence ended), else to the job's destination; the event to log, or None when
        none is owed or nobody is named to hear it."""
        destination = to if to is not None else self.policies.destination_of(file.job)
        reason = ending.notice
        if destination is None or reason is None:
            return None
        if (
            destination.kind is NoticeKind.COMMAND
            and not self.commands
            and destination != self.policies.on_failure
        ):
            message = (
                f"on_failure.command: not run, since this runner runs no commands"
                f" (LAMBDACRON_ALLOWED_TYPES); the {reason.value} notice is not sent"
            )
            return JobEvent(file.key, Outcome.NOTICE_FAILED, message, scheduled)
        run = file.document.get("run")
        notice = Notice(
            file.key,
            self.store_url,
            scheduled,
            reason,
            ending.attempts,
            ending.fields.get("last_result"),
            run if isinstance(run, dict) else None,
            self.clock(),
        )
        sent = self.notifier.send(destination, notice)
        if sent.delivered:
            message = f"{reason.value} notice sent to {destination.describe()}"
            return JobEvent(file.key, Outcome.NOTIFIED, message, scheduled)
        message = sent.error or f"could not notify {destination.describe()}"
        return JobEvent(file.key, Outcome.NOTICE_FAILED, message, scheduled)


__all__ = ["Teller"]
