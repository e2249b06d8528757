"""A store that refuses the runner's writes (the disk full, a quota, a file size limit) as a
real tick meets it: no job file is lost or cut short, the log line says the store refused
the write (not that someone edited the job), and the next tick tells of the run it could
not record."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

from helpers import notices, notices_to, place, read_json, subprocess_env

#: Above a claimed file's size, below a file holding the run's output: the claim lands,
#: the result cannot.
LIMIT_BYTES = 4000


def limited() -> None:
    # Without this the kernel ends the writer with SIGXFSZ; the store must see the error.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))


def test_a_result_the_store_refuses_leaves_whole_files_and_is_told_at_the_next_tick(
    tmp_path: Path,
) -> None:
    root, told = tmp_path / "jobs", tmp_path / "notices.jsonl"
    chatty = ["sh", "-c", "yes hello | head -c 5000"]
    names = ["a.json", "b.json"]
    for name in names:
        job = {
            # Due once, whenever the test runs: a cron job could be due again at the second
            # tick, and its new run would stand in last_result instead of the interrupted one.
            "when": "at(2020-01-01T00:00:00)",
            "note": "n" * 3000,
            "on_failure": notices_to(told),
            "run": {"type": "command", "details": {"command": chatty}},
        }
        place(root, name, job)
    tick = [sys.executable, "-m", "lambdacron", "tick", "--store", str(root)]
    first = subprocess.run(
        tick, capture_output=True, text=True, env=subprocess_env(), preexec_fn=limited
    )
    assert first.returncode == 0, first.stderr
    for name in names:
        state = read_json(root / name)  # whole JSON: the claim, not half a result
        assert state["note"] == "n" * 3000 and "claim" in state
        (line,) = [x for x in first.stderr.splitlines() if f"ran {name}" in x]
        assert "result not written: the store refused the write" in line
        assert "meanwhile" not in line
    assert sorted(p.name for p in root.iterdir()) == [".lambdacron", *names]

    second = subprocess.run(tick, capture_output=True, text=True, env=subprocess_env())
    assert second.returncode == 0, second.stderr
    for name in names:
        state = read_json(root / name)
        assert "claim" not in state
        assert state["last_result"]["status"] == "interrupted"
    assert sorted(n["key"] for n in notices(told)) == names
    assert all(n["reason"] == "interrupted" for n in notices(told)), json.dumps(notices(told))
