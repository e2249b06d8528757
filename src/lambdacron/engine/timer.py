"""``serve``'s delivery: planned occurrences in a heap, handed to the engine at their time.

The planning ticks feed it; a dispatcher thread sleeps until the earliest planned time and
hands every occurrence whose time has come to ``hand`` (the engine's run pool). It keeps
nothing on disk: after a crash the restarted runner's first tick runs what was missed as
its catch-up and plans the rest again. Overlapping plans (a lookahead longer than the
interval) are merged here, and so is a late tick's plan of what was already handed; a
duplicate that slips through (after a restart) finds the occurrence claimed.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from .delivery import Delivery, Occurrence

#: The longest single wait: the wall clock may be stepped (NTP) while the dispatcher sleeps
#: on a monotonic timeout, so it looks at the clock again at least this often.
_MAX_WAIT_S = 1.0


class TimerQueue(Delivery):
    def __init__(self, lookahead: timedelta, clock: Callable[[], datetime]) -> None:
        self.lookahead = lookahead
        self._clock = clock
        self._heap: list[Occurrence] = []
        self._pending: set[Occurrence] = set()
        # Handed occurrences, kept for a lookahead past their time: a tick that starts late
        # (it overran, or its event came late) plans again what this queue already handed.
        self._handed: set[Occurrence] = set()
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        with self._wake:
            return len(self._heap)

    def plan(self, occurrences: Sequence[Occurrence]) -> None:
        with self._wake:
            if self._closed:
                return
            horizon = self._clock() - self.lookahead
            self._handed = {o for o in self._handed if o.at > horizon}
            for occurrence in occurrences:
                if occurrence not in self._pending and occurrence not in self._handed:
                    self._pending.add(occurrence)
                    heapq.heappush(self._heap, occurrence)
            self._wake.notify()

    def forget(self, stale: Occurrence) -> None:
        """Drop what is still planned of ``stale``'s plan (its key, its fingerprint): the job
        is gone or its schedule changed, so each would only be read and cancelled, one log
        line a time, for up to a lookahead (a deleted ``rate(1 seconds)`` job: 120 lines)."""
        with self._wake:
            kept = [
                o for o in self._heap if (o.key, o.fingerprint) != (stale.key, stale.fingerprint)
            ]
            if len(kept) != len(self._heap):
                heapq.heapify(kept)
                self._heap = kept
                self._pending = set(kept)

    def start(self, hand: Callable[[Occurrence], object]) -> None:
        """Start handing each occurrence to ``hand`` at its time (never before)."""
        self._thread = threading.Thread(
            target=self._dispatch, args=(hand,), name="lambdacron-timer", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Hand nothing more; what is still planned is left for the next runner's tick."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()

    def _next_due(self) -> list[Occurrence] | None:
        """Wait for the earliest occurrence's time; those due then, or None once closed."""
        with self._wake:
            while not self._closed:
                now = self._clock()
                if self._heap and self._heap[0].at <= now:
                    due = []
                    while self._heap and self._heap[0].at <= now:
                        occurrence = heapq.heappop(self._heap)
                        self._pending.discard(occurrence)
                        self._handed.add(occurrence)
                        due.append(occurrence)
                    return due
                wait = _MAX_WAIT_S
                if self._heap:
                    wait = min(wait, (self._heap[0].at - now).total_seconds())
                self._wake.wait(wait)
            return None

    def _dispatch(self, hand: Callable[[Occurrence], object]) -> None:
        while (due := self._next_due()) is not None:
            for occurrence in due:
                hand(occurrence)


__all__ = ["TimerQueue"]
