"""Scheduling from code at the same time as others: two adds of one key, and a cancel
while a tick runs the job, in threads and in real processes, on every store."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import lambdacron
from conftest import Run
from helpers import spawn
from lambdacron.errors import ConflictError, JobNotFoundError
from lambdacron.store import Store


def job(note: int) -> dict[str, Any]:
    return {
        "when": "@hourly",
        "note": note,
        "run": {"type": "command", "details": {"command": ["true"]}},
    }


def race_adds(store: Store, key: str, count: int) -> dict[int, str]:
    """``count`` threads add a job under ``key`` at once: how each call ended."""
    start = threading.Barrier(count)
    outcomes: dict[int, str] = {}

    def add(note: int) -> None:
        start.wait()
        try:
            lambdacron.add(store, job(note), key)
            outcomes[note] = "won"
        except ConflictError:
            outcomes[note] = "conflict"
        except BaseException as exc:  # asserted by the caller
            outcomes[note] = repr(exc)

    threads = [threading.Thread(target=add, args=(note,)) for note in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_adds_of_one_key_in_threads_one_wins(store: Store) -> None:
    for round_ in range(5):
        key = f"orders/{round_}.json"
        outcomes = race_adds(store, key, 8)
        assert sorted(outcomes.values()) == ["conflict"] * 7 + ["won"], outcomes
        (winner,) = [note for note, outcome in outcomes.items() if outcome == "won"]
        assert lambdacron.get(store, key)["note"] == winner


_ADD = """
import os, sys, time
import lambdacron
store = lambdacron.open_store(sys.argv[1])
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
try:
    lambdacron.add(store, {"when": "@hourly", "note": int(sys.argv[4]),
                           "run": {"type": "command", "details": {"command": ["true"]}}},
                   sys.argv[3])
    print("won")
except lambdacron.ConflictError as exc:
    print("conflict", exc)
"""


def test_adds_of_one_key_in_two_processes_one_wins(store: Store, tmp_path: Path) -> None:
    for round_ in range(3):
        key, go = f"order-{round_}.json", tmp_path / f"go-{round_}"
        adders = [
            subprocess.Popen(
                [sys.executable, "-c", _ADD, store.url, str(go), key, str(note)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for note in range(2)
        ]
        time.sleep(0.5)  # both started and waiting: only helps the race, asserts nothing
        go.touch()
        results = [adder.communicate(timeout=60) for adder in adders]
        outcomes = [out.split(" ", 1)[0].strip() for out, _ in results]
        assert sorted(outcomes) == ["conflict", "won"], results
        assert f"{key}: a job with this key already exists" in "".join(o for o, _ in results)
        assert lambdacron.get(store, key)["note"] == outcomes.index("won")


_WAIT = """
import pathlib, sys, time
pathlib.Path(sys.argv[1]).touch()
deadline = time.monotonic() + 60
while not pathlib.Path(sys.argv[2]).exists() and time.monotonic() < deadline:
    time.sleep(0.01)
"""


def test_cancel_while_a_tick_runs_the_job(store: Store, tmp_path: Path, run_cli: Run) -> None:
    """The README: a run under way is not stopped; its result is not written back, and the
    job is not recreated. The tick is a real process; cancel returns while it runs."""
    started, release = tmp_path / "started", tmp_path / "release"
    key = lambdacron.schedule(
        store,
        "at(2026-01-01T00:00:00Z)",
        command=[sys.executable, "-c", _WAIT, str(started), str(release)],
        key="orders/cancel-me.json",
    )
    tick = spawn("tick", "--store", store.url)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert tick.poll() is None, tick.communicate()
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.01)
        assert "claim" in lambdacron.get(store, key)  # the tick holds it while it runs
        assert lambdacron.cancel(store, key) is None
    finally:
        release.touch()
        out, err = tick.communicate(timeout=60)
    assert tick.returncode == 0, out + err
    assert "internal error" not in out + err
    with pytest.raises(JobNotFoundError):
        lambdacron.get(store, key)
    assert key not in {entry.key for entry in store.list()}
    listed = run_cli("ls", "--store", store.url)
    assert listed.returncode == 0 and key not in listed.stdout, listed.stdout + listed.stderr
