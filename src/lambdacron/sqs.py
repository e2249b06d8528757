"""Delivery on AWS: each planned occurrence is an SQS message delayed until its time.

The tick sends one message per planned occurrence with ``DelaySeconds`` the whole seconds
until its time (SQS allows at most 900), ten to a ``SendMessageBatch``. The same function
consumes the queue through an event source mapping; ``handler.py`` turns each record back
into an ``Occurrence`` and has the engine deliver it. SQS delivers at least once, and the
claim makes a second delivery find its occurrence taken.

boto3 is imported only when a queue is configured.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from . import aws
from .engine.delivery import Delivery, Occurrence
from .errors import DeliveryError, LambdacronError

#: SQS's longest message delay.
MAX_DELAY_SECONDS = 900
#: SQS's most entries in one SendMessageBatch.
_BATCH = 10


def message_body(occurrence: Occurrence, store: str) -> str:
    return json.dumps({**occurrence.to_json(), "store": store}, separators=(",", ":"))


def occurrence_of(body: str, store: str) -> Occurrence:
    """The occurrence an SQS message carries; ``LambdacronError`` naming the problem."""
    from .fields import type_name
    from .jobfile import decode  # the job file's reader: no NaN, no field named twice

    expected = "expected an occurrence, a JSON object"
    if not body.strip():  # the reader would speak of a file
        raise LambdacronError(f"the message body: is empty; {expected}")
    try:
        value = decode(body.encode("utf-8", "surrogatepass"))
    except LambdacronError as exc:
        raise LambdacronError(f"the message body: {exc}") from None
    if not isinstance(value, dict):
        raise LambdacronError(f"the message body: {expected}, got {type_name(value)}")
    occurrence = Occurrence.from_json(value)
    sent_for = value.get("store")
    if sent_for != store:
        raise LambdacronError(f"store: planned for {sent_for!r}, but this function runs {store!r}")
    return occurrence


def delay_for(occurrence: Occurrence, now: datetime) -> int:
    """Whole seconds to hold the message: never past the occurrence (the receiver waits
    out the fraction left), and at most SQS's limit (the receiver sends it on again)."""
    seconds = math.floor((occurrence.at - now).total_seconds())
    return max(0, min(MAX_DELAY_SECONDS, seconds))


class SqsDelivery(Delivery):
    def __init__(
        self,
        queue_url: str,
        store: str,
        lookahead: timedelta,
        *,
        clock: Callable[[], datetime],
        client: Any = None,
    ) -> None:
        self.queue_url = queue_url
        self.store = store
        self.lookahead = lookahead
        self._clock = clock
        self._client = client
        # What this runner has sent and SQS accepted, by occurrence, until a lookahead past
        # its time. Consecutive ticks' lookaheads overlap (at the default, each occurrence is
        # in two), a tick that starts late (a late event, a cold start) plans again what is
        # already past, and a message sent once is delivered at least once: a warm function
        # sends each occurrence once. A cold one knows nothing of it and sends it again; the
        # second delivery finds the occurrence taken.
        self._sent: set[Occurrence] = set()
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("sqs")
        return self._client

    def plan(self, occurrences: Sequence[Occurrence]) -> None:
        with self._lock:
            self._forget_past()
            fresh = sorted(set(occurrences) - self._sent)
        self._send_all(fresh)

    def send(self, occurrences: Sequence[Occurrence]) -> None:
        """Send each occurrence, whether or not this runner sent it before (a delivery that
        came too early is sent on again: its message is the one being consumed)."""
        # An engine that only consumes the queue (the ticks go to the shards' engines)
        # sends, and never plans: what it sent is forgotten here too, once past.
        with self._lock:
            self._forget_past()
        self._send_all(occurrences)

    def _forget_past(self) -> None:
        # Called with the lock held.
        horizon = self._clock() - self.lookahead
        self._sent = {o for o in self._sent if o.at > horizon}

    def _send_all(self, occurrences: Sequence[Occurrence]) -> None:
        client = self.client
        # One batch after another: sent side by side, they made the deliveries of the same
        # seconds wait longer, not shorter (measured in docs/scaling.md, "Lateness").
        failed = [
            problem
            for start in range(0, len(occurrences), _BATCH)
            for problem in self._send(client, occurrences[start : start + _BATCH])
        ]
        if failed:
            raise DeliveryError(
                f"{len(failed)} of {len(occurrences)} messages not sent to {self.queue_url}"
                f" (first: {failed[0]})"
            )

    def _send(self, client: Any, batch: Sequence[Occurrence]) -> list[str]:
        """Send one batch, and remember what SQS accepted; a line for each occurrence that
        was not accepted."""
        from botocore.exceptions import BotoCoreError, ClientError

        # The wall clock, not the tick's time: an event that arrived late still delays each
        # message only until its occurrence.
        now = self._clock()
        entries = [
            {
                "Id": str(i),
                "MessageBody": message_body(occurrence, self.store),
                "DelaySeconds": delay_for(occurrence, now),
            }
            for i, occurrence in enumerate(batch)
        ]
        try:
            answer = client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            return [f"{o.key}: {exc}" for o in batch]
        failed = {int(entry["Id"]): entry for entry in answer.get("Failed", [])}
        with self._lock:
            self._sent.update(o for i, o in enumerate(batch) if i not in failed)
        return [
            f"{batch[i].key}: {entry.get('Code')}: {entry.get('Message')}"
            for i, entry in failed.items()
        ]


__all__ = ["MAX_DELAY_SECONDS", "SqsDelivery", "delay_for", "message_body", "occurrence_of"]
