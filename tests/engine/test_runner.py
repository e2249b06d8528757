"""The runner loops of ``engine/runner.py`` in process, on a real store directory."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers import command_job, place
from lambdacron.actions import default_registry
from lambdacron.engine.report import JobEvent, Outcome
from lambdacron.engine.runner import StopRequests, next_boundary, serve
from lambdacron.engine.tick import Engine
from lambdacron.errors import StoreError
from lambdacron.store import open_store


def test_a_removed_store_directory_cannot_be_listed(root: Path) -> None:
    place(root, "a.json", command_job("@hourly", ["true"]))
    store = open_store(str(root))
    assert [e.key for e in store.list()] == ["a.json"]
    shutil.rmtree(root)
    with pytest.raises(StoreError, match="does not exist any more"):
        list(store.list())
    with pytest.raises(StoreError, match="does not exist any more"):
        list(store.list((0, 2)))


def test_a_store_removed_while_serving_is_an_error_at_every_tick(root: Path) -> None:
    events: list[JobEvent] = []
    summaries: list[str] = []
    engine = Engine(open_store(str(root)), default_registry(), clock=lambda: datetime.now(UTC))
    engine.log = events.append
    shutil.rmtree(root)
    # The wall clock shifted to just before a minute's end: the catch-up tick, then a tick on
    # the boundary soon after.
    real = datetime.now(UTC)
    offset = next_boundary(real, 1) - timedelta(seconds=0.5) - real

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    with engine, StopRequests() as stop:
        loop = threading.Thread(
            target=serve,
            args=(engine, 1, stop),
            kwargs={"clock": clock, "out": summaries.append, "say": lambda line: None},
        )
        loop.start()
        deadline = time.monotonic() + 60
        while len(summaries) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.request("test")
        loop.join(timeout=60)
    assert len(summaries) == 2
    assert all(", 1 store errors in " in line for line in summaries), summaries
    errors = [e for e in events if e.outcome is Outcome.STORE_ERROR]
    assert [e.message for e in errors] == [
        f"cannot list the store: store {str(root)!r} does not exist any more"
    ] * 2


def test_a_stop_signal_taken_by_another_thread_wakes_the_waiting_main_thread() -> None:
    # The kernel hands a process's signal to any thread not blocking it (another one when
    # the main thread has one pending). Python runs the handler in the main thread, but
    # only once that thread wakes: a runner waiting on its pipe slept through the signal.
    woken_by_hand: list[bool] = []

    def signal_from_a_worker() -> None:
        time.sleep(0.2)  # the main thread is waiting by now, or the pipe holds the byte
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while stop.count == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        woken_by_hand.append(stop.count == 0)
        stop.wake()  # a watchdog: the test ends even if the signal did not wake the wait

    with StopRequests() as stop, stop.signalled([signal.SIGUSR1]):
        worker = threading.Thread(target=signal_from_a_worker)
        worker.start()
        while stop.count == 0 and not woken_by_hand:
            stop.wait(None)
        worker.join()
    assert stop.names == ["SIGUSR1"]
    assert woken_by_hand == [False]


def test_signalled_puts_back_the_handlers_and_wakeup_it_found() -> None:
    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not to be called")

    before = signal.signal(signal.SIGUSR1, mine)
    try:
        with StopRequests() as stop:
            with stop.signalled([signal.SIGUSR1]):
                assert signal.getsignal(signal.SIGUSR1) is not mine
                os.kill(os.getpid(), signal.SIGUSR1)
                stop.wait(5)
            assert stop.names == ["SIGUSR1"]
            assert signal.getsignal(signal.SIGUSR1) is mine
            assert signal.set_wakeup_fd(-1) == -1  # none was set before, none is left
    finally:
        signal.signal(signal.SIGUSR1, before)
