"""SIGKILL a tick after it wrote a failed occurrence's end but before its notice was out:
the next tick sends the notice, once, and the occurrence never runs again. Real processes
on real files: the notice destination is a command that waits until it is let through."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from conftest import Run
from helpers import place, read_json, spawn


def wait_for(path: Path, seconds: float = 30) -> None:
    end = time.monotonic() + seconds
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < end, f"{path.name} never appeared"
        time.sleep(0.02)


def test_a_notice_cut_off_by_a_kill_is_sent_by_the_next_tick(run_cli: Run, tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    runs, gate = tmp_path / "runs", tmp_path / "let-through"
    told, waiting = tmp_path / "notices.jsonl", tmp_path / "notifier.pid"
    # Until the gate exists the destination hangs (as a slow topic would), its pid written.
    notifier = (
        f"if [ ! -e {gate} ]; then echo $$ > {waiting}; exec sleep 300; fi;"
        f" cat >> {told}; echo >> {told}"
    )
    document = {
        "when": "at(2026-01-01T18:30:00)",
        "order": {"customer": 42},
        "on_failure": {"command": ["sh", "-c", notifier]},
        "run": {
            "type": "command",
            "details": {"command": ["sh", "-c", f"echo x >> {runs}; exit 3"]},
        },
    }
    path = place(root, "order.json", document)
    victim = spawn("tick", "--store", str(root))
    try:
        wait_for(waiting)
        held = read_json(path)
        # The end is written, and the claim held for its notice with it, before the notice.
        assert held["last_result"]["status"] == "failed" and held["execution_count"] == 1
        assert held["claim"]["telling"] == {"reason": "failed", "attempts": 1}
        assert held["claim"]["pid"] == victim.pid
        listed = run_cli("ls", "--store", str(root), "--json")
        assert json.loads(listed.stdout)[0]["status"] == "failed"  # it ended; not "running"
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        if waiting.exists():
            os.killpg(int(waiting.read_text()), signal.SIGKILL)  # its own process group
    assert not told.exists()

    gate.touch()
    second = run_cli("tick", "--store", str(root))
    assert second.returncode == 0, second.stderr
    assert "told order.json (scheduled 2026-01-01T18:30:00Z): failed notice sent" in second.stderr
    (notice,) = [json.loads(line) for line in told.read_text().splitlines() if line.strip()]
    assert (notice["reason"], notice["key"], notice["attempts"]) == ("failed", "order.json", 1)
    assert notice["occurrence"] == "2026-01-01T18:30:00Z"
    assert notice["last_result"]["exit_code"] == 3
    state = read_json(path)
    assert "claim" not in state and state["order"] == {"customer": 42}
    assert state["last_result"]["status"] == "failed" and state["execution_count"] == 1

    third = run_cli("tick", "--store", str(root))
    assert third.returncode == 0, third.stderr
    assert len([line for line in told.read_text().splitlines() if line.strip()]) == 1
    assert runs.read_text() == "x\n"  # run once, before the kill; never again
