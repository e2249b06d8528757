"""The run pool: worker threads for runs, added only when the runs wait.

A run is a few steps of Python and short system calls (the claim, the store's writes, the
result) around its action, which mostly waits: on a process, an invocation, a notice.
Threads that do the steps side by side gain nothing under the GIL, and each system call
they make hands the GIL over to another (a futex and a context switch each time), which
costs more than the steps themselves when runs are short. So the pool keeps one thread
doing steps at a time and adds a thread when every thread it has is waiting (inside
``waiting()``) while work is queued, up to ``workers``: runs whose actions wait still
overlap as with ``workers`` threads, and runs that do not wait are not interleaved.

Where the steps themselves wait (a store over the network), ``eager=True`` gives a plain
pool: a thread is added whenever none is free, as ``ThreadPoolExecutor`` does.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]
_POOLS: weakref.WeakSet[RunPool] = weakref.WeakSet()


@atexit.register
def _finish_at_exit() -> None:
    # The threads are daemons, so an idle pool never holds the interpreter open; but a run
    # in progress at exit is finished and recorded, as ThreadPoolExecutor's would be.
    for pool in list(_POOLS):
        pool.shutdown(wait=True)


class RunPool:
    def __init__(self, workers: int, *, eager: bool = False, name: str = "lambdacron-run") -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.eager = eager
        self._name = name
        self._queue: deque[_Work] = deque()
        self._lock = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._waiting = 0
        self._closed = False
        self._local = threading.local()
        _POOLS.add(self)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a closed run pool")
            self._queue.append((future, fn, args))
            # An idle thread that was woken stays counted until it runs again, and takes
            # one piece of work: only idle threads beyond the work queued are free.
            if len(self._queue) <= self._idle:
                self._lock.notify()
            elif self.eager or len(self._threads) == self._waiting:
                started = self._add_thread()
                if not started and not self._threads:  # nothing would ever take it
                    self._queue.pop()
                    raise RuntimeError("cannot start a thread for the run pool")
        return future

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Mark the calling worker as waiting (on a process, the network) while inside: if
        work is queued and no other thread is free to take it, a thread is added for it."""
        if not getattr(self._local, "worker", False):
            yield  # not one of this pool's threads: nothing to account for
            return
        with self._lock:
            self._waiting += 1
            if self._queue and not self._idle and len(self._threads) == self._waiting:
                self._add_thread()
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1

    def shutdown(self, wait: bool = True) -> None:
        """Take no more work; with ``wait``, return once the queued work is done."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if not wait:
            return
        # A run still going may add a thread (for work queued behind it) while this waits:
        # every thread is joined, those added meanwhile too. Only a live thread adds one,
        # so once all that are listed have ended, none can be added.
        joined = 0
        while True:
            with self._lock:
                if joined == len(self._threads):
                    return
                thread = self._threads[joined]
            thread.join()
            joined += 1

    def _add_thread(self) -> bool:
        """Start one more thread, if the pool may have one; whether it did. Called with the
        lock held."""
        if len(self._threads) >= self.workers:
            return False
        thread = threading.Thread(
            target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:
            # No thread can be started now (the interpreter is exiting, or a limit is
            # reached): the threads there are take the queued work in turn. A thread that
            # never started is not counted, or the pool would wait on it forever.
            return False
        self._threads.append(thread)
        return True

    def _work(self) -> None:
        self._local.worker = True
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._idle += 1
                    self._lock.wait()
                    self._idle -= 1
                if not self._queue:
                    return  # closed, and nothing left to do
                future, fn, args = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)


__all__ = ["RunPool"]
