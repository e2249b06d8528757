"""The run pool: one thread does the runs' own steps; a thread is added for each run that
waits, up to the pool's size. Real threads, real processes; no timing assertions: overlap is
shown by barriers that only open when enough runs are inside them at once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from helpers import FakeClock, command_job, place, utc
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.engine.pool import RunPool
from lambdacron.store import LocalStore

BARRIER_TIMEOUT = 10


def test_runs_that_never_wait_are_all_done_by_one_thread() -> None:
    pool = RunPool(8)
    threads = [pool.submit(threading.get_ident) for _ in range(200)]
    assert len({f.result() for f in threads}) == 1
    pool.shutdown()


def test_runs_that_wait_overlap_up_to_the_pool_size() -> None:
    pool = RunPool(4)
    inside = threading.Barrier(4, timeout=BARRIER_TIMEOUT)
    most = [0]
    now = [0]
    lock = threading.Lock()

    def wait() -> None:
        with pool.waiting():
            with lock:
                now[0] += 1
                most[0] = max(most[0], now[0])
            inside.wait()  # opens only with 4 runs waiting at once
            with lock:
                now[0] -= 1

    futures = [pool.submit(wait) for _ in range(12)]
    for future in futures:
        future.result()  # a BrokenBarrierError here: the runs did not overlap
    assert most[0] == 4
    pool.shutdown()


def test_no_more_threads_than_the_pool_size_however_many_wait() -> None:
    pool = RunPool(3)
    inside = threading.Barrier(4, timeout=0.5)

    def wait() -> bool:
        with pool.waiting():
            try:
                inside.wait()
            except threading.BrokenBarrierError:
                return False
            return True

    results = [pool.submit(wait) for _ in range(4)]
    assert [f.result() for f in results] == [False] * 4  # a 4th thread never came
    pool.shutdown()


def test_an_eager_pool_runs_side_by_side_without_being_told_of_waits() -> None:
    pool = RunPool(3, eager=True)
    inside = threading.Barrier(3, timeout=BARRIER_TIMEOUT)
    results = [pool.submit(inside.wait) for _ in range(3)]
    assert sorted(f.result() for f in results) == [0, 1, 2]
    pool.shutdown()


def test_a_run_s_exception_reaches_its_future_and_the_pool_goes_on() -> None:
    pool = RunPool(2)

    def fail() -> None:
        raise ValueError("boom")

    failed = pool.submit(fail)
    with pytest.raises(ValueError, match="boom"):
        failed.result()
    assert pool.submit(lambda: 7).result() == 7
    pool.shutdown()


def test_shutdown_finishes_what_was_queued_and_refuses_more() -> None:
    pool = RunPool(1)
    gate = threading.Event()
    done: list[int] = []
    pool.submit(gate.wait)
    for i in range(5):
        pool.submit(done.append, i)
    gate.set()
    pool.shutdown(wait=True)
    assert done == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError):
        pool.submit(done.append, 5)


def test_waiting_outside_the_pool_s_threads_changes_nothing() -> None:
    pool = RunPool(2)
    with pool.waiting():
        pass
    assert pool.submit(threading.get_ident).result() != threading.get_ident()
    pool.shutdown()


def test_an_engine_runs_jobs_whose_processes_wait_side_by_side(root: Path, tmp_path: Path) -> None:
    # Each job's process waits until all four have started: with fewer than four running at
    # once, they fail.
    seen = tmp_path / "started"
    seen.mkdir()
    script = (
        f'touch {seen}/"$LAMBDACRON_JOB"; '
        f"for i in $(seq 100); do [ $(ls {seen} | wc -l) -ge 4 ] && exit 0; sleep 0.05; done; "
        "exit 1"
    )
    t = utc(2026, 6, 1, 12, 0)
    for i in range(4):
        place(root, f"j{i}.json", command_job("* * * * *", ["bash", "-c", script]), t)
    clock = FakeClock(t)
    with Engine(LocalStore(root), default_registry(), clock=clock, workers=4) as engine:
        clock.advance(minutes=1)
        report = engine.tick(clock.now)
    assert (report.ran, report.failed) == (4, 0)
    assert len(list(seen.iterdir())) == 4


def test_an_eager_pool_counts_a_woken_idle_thread_for_one_run_only() -> None:
    # A burst of submits meets an idle thread before it has woken: it takes one run, and
    # each other run needs a thread of its own.
    pool = RunPool(3, eager=True)
    pool.submit(lambda: None).result()
    while True:  # until that thread waits for work
        with pool._lock:
            if pool._idle == 1:
                break
    inside = threading.Barrier(3, timeout=BARRIER_TIMEOUT)
    # The idle thread cannot wake while the lock is held, as it has not when submits come
    # one right after another.
    with pool._lock:
        results = [pool.submit(inside.wait) for _ in range(3)]
    assert sorted(f.result() for f in results) == [0, 1, 2]  # not a BrokenBarrierError
    pool.shutdown()


def test_shutdown_waits_for_a_run_taken_by_a_thread_added_while_it_waits() -> None:
    pool = RunPool(2)
    go, hold = threading.Event(), threading.Event()
    second_started, second_done = threading.Event(), threading.Event()

    def first() -> None:
        go.wait(BARRIER_TIMEOUT)
        with pool.waiting():  # adds a thread, which takes the second run
            second_started.wait(BARRIER_TIMEOUT)

    def second() -> None:
        second_started.set()
        hold.wait(BARRIER_TIMEOUT)
        second_done.set()

    pool.submit(first)
    pool.submit(second)
    done_when_shutdown_returned: list[bool] = []

    def shut() -> None:
        pool.shutdown(wait=True)
        done_when_shutdown_returned.append(second_done.is_set())

    closer = threading.Thread(target=shut)
    closer.start()
    while True:  # until shutdown has begun: the pool takes no more work
        try:
            pool.submit(lambda: None)
        except RuntimeError:
            break
    go.set()
    assert second_started.wait(BARRIER_TIMEOUT)
    closer.join(2)  # a shutdown that does not wait for the second run returns meanwhile
    hold.set()
    closer.join()
    assert done_when_shutdown_returned == [True]


def test_a_thread_that_cannot_start_fails_no_run_and_leaves_the_pool_working(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As when the interpreter exits (Python 3.12 refuses new threads then) while a run of
    # an engine never closed waits, with another run queued behind it.
    pool = RunPool(2)
    gate = threading.Event()

    def waits() -> int:
        gate.wait(BARRIER_TIMEOUT)
        with pool.waiting():  # the second run is queued: a thread is started for it
            return 1

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    first = pool.submit(waits)
    second = pool.submit(lambda: 2)
    monkeypatch.setattr(threading.Thread, "start", refuse)
    gate.set()
    assert (first.result(), second.result()) == (1, 2)
    pool.shutdown(wait=True)
