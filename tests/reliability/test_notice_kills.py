"""SIGKILL a tick after it wrote a failed occurrence's end but before its notice was out:
the next tick sends the notice, once, and the occurrence never runs again. Real processes
on real files: the notice destination is a command that waits until it is let through."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import Run
from helpers import T0, place, read_json, spawn, subprocess_env
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.store import LocalStore


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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
        assert held["claim"]["telling"] == {
            "reason": "failed",
            "attempts": 1,
            "to": document["on_failure"],  # where it is owed, for whoever takes it over
        }
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


# ------------------------------------------------------------------ a randomized campaign

CAMPAIGN_JOBS = 6


def campaign_jobs(root: Path, box: Path, runs: Path) -> dict[str, str]:
    """Jobs that end each way an occurrence can: failed, ok, missed (a deadline no run can
    meet: the ticks' time is long past), each telling a destination that is sometimes slow
    and writes each notice it receives as a file of its own (whole, or not at all). Returns
    how each job's occurrences end."""
    box.mkdir()
    ran = f'echo "$LAMBDACRON_JOB@$LAMBDACRON_SCHEDULED_TIME" >> {runs}'
    ends: dict[str, str] = {}
    for i in range(CAMPAIGN_JOBS):
        kind = ("failed", "ok", "missed")[i % 3]
        pause = ("0", "0.3", "0.8")[i % 3 if kind != "failed" else i % 2]
        # Kept only when whole: a runner killed while it writes the notice leaves its
        # command a stdin that ends early, which a destination must not take for a notice.
        whole = f"{sys.executable} -c 'import json, sys; json.load(open(sys.argv[1]))'"
        tell = (
            f'sleep {pause}; t=$(mktemp -p {box} .n.XXXXXX); cat > "$t";'
            f' {whole} "$t" 2>/dev/null && mv "$t" "$t.json"'
        )
        fields: dict[str, object] = {"deadline_seconds": 60} if kind == "missed" else {}
        document = {
            "when": "* * * * *",
            "on_failure": {"command": ["sh", "-c", tell]},
            "run": {
                "type": "command",
                "details": {"command": ["sh", "-c", f"{ran}; exit {3 if kind == 'failed' else 0}"]},
            },
            **fields,
        }
        place(root, f"j{i}.json", document, T0)
        ends[f"j{i}.json"] = kind
    return ends


def told_in(box: Path) -> list[tuple[str, str, str]]:
    return [
        (n["key"], n["occurrence"], n["reason"])
        for n in (json.loads(p.read_text()) for p in box.glob("*.json"))
    ]


@pytest.mark.slow
def test_kills_at_random_moments_never_leave_an_end_untold(tmp_path: Path) -> None:
    """A ``tick`` killed at a random moment (reading, running, writing an end, waiting on a
    slow notice, releasing its claim), then a normal tick for the same minute: every
    occurrence that ended not ok has been told of, no claim is left, nothing ran twice, and
    an occurrence that ended ok was never told of."""
    root, box = tmp_path / "jobs", tmp_path / "told"
    ends = campaign_jobs(root, box, tmp_path / "runs")
    rng = random.Random(2026)
    phases: Counter[str] = Counter()
    store = LocalStore(root)
    rounds = 16
    with Engine(store, default_registry(), clock=lambda: datetime.now(UTC)) as engine:
        for r in range(1, rounds + 1):
            now = T0 + timedelta(days=1, minutes=r)
            victim = spawn("tick", "--store", str(root), "--now", stamp(now))
            time.sleep(rng.uniform(0.1, 1.4))
            victim.send_signal(signal.SIGKILL)
            victim.communicate(timeout=30)
            for key in ends:
                claim = read_json(root / key).get("claim")
                phases["none" if claim is None else "telling" if "telling" in claim else "run"] += 1
            report = engine.tick(now)
            phases["told by the following tick"] += report.notices
            for key in ends:
                state = read_json(root / key)
                assert "claim" not in state, (r, key, state["claim"])
                assert state["last_scheduled"] == stamp(now), (r, key)
    time.sleep(1.5)  # notices of killed runners still on their way land
    ran = Counter((tmp_path / "runs").read_text().split())
    assert set(ran.values()) == {1}, [k for k, v in ran.items() if v > 1]  # nothing ran twice
    told = Counter(told_in(box))
    for r in range(1, rounds + 1):
        occurrence = stamp(T0 + timedelta(days=1, minutes=r))
        for key, kind in ends.items():
            reasons = {reason for (k, o, reason) in told if (k, o) == (key, occurrence)}
            if kind == "ok":
                assert reasons <= {"interrupted"}, (key, occurrence, reasons)
            elif kind == "missed":
                assert reasons == {"missed"}, (key, occurrence, reasons)
            else:
                assert reasons and reasons <= {"failed", "interrupted"}, (key, occurrence)
    print(f"phases at the kills: {dict(phases)}; notices: {sum(told.values())}")
    assert phases["telling"] > 0  # the campaign did catch runners before their notice was out


def test_a_notice_owed_to_the_store_wide_default_is_sent_there_by_a_runner_without_it(
    run_cli: Run, tmp_path: Path
) -> None:
    """The runner that ended the occurrence told ``LAMBDACRON_ON_FAILURE``; the one that
    finds its claim dead (a tick from another shell, ``lambdacron run`` from a laptop) may
    not have that setting: the notice still goes where it was owed, never nowhere."""
    root = tmp_path / "jobs"
    gate, told, waiting = tmp_path / "let-through", tmp_path / "told.jsonl", tmp_path / "pid"
    notifier = (
        f"if [ ! -e {gate} ]; then echo $$ > {waiting}; exec sleep 300; fi;"
        f" cat >> {told}; echo >> {told}"
    )
    document = {
        "when": "at(2026-01-01T18:30:00)",
        "run": {"type": "command", "details": {"command": ["false"]}},
    }
    path = place(root, "order.json", document)
    default = json.dumps({"command": ["sh", "-c", notifier]})
    victim = subprocess.Popen(
        [sys.executable, "-m", "lambdacron", "tick", "--store", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**subprocess_env(), "LAMBDACRON_ON_FAILURE": default},
    )
    try:
        wait_for(waiting)
        assert read_json(path)["claim"]["telling"]["reason"] == "failed"
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        if waiting.exists():
            os.killpg(int(waiting.read_text()), signal.SIGKILL)
    gate.touch()
    second = run_cli("tick", "--store", str(root))  # no LAMBDACRON_ON_FAILURE here
    assert second.returncode == 0, second.stderr
    (notice,) = [json.loads(line) for line in told.read_text().splitlines() if line.strip()]
    assert (notice["key"], notice["reason"]) == ("order.json", "failed")
    assert "claim" not in read_json(path)
