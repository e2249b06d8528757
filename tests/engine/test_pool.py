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
