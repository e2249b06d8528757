"""One failing order's whole story through the CLI, as real processes on real files: its
attempts, its notice, its history, `ls --status failed`, and `lambdacron run` to success."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import Run
from helpers import place, read_json


def order(tmp_path: Path) -> dict[str, Any]:
    """A one-time order that fails ("vendor closed") until the vendor opens."""
    script = (
        "import pathlib, sys\n"
        f"if not pathlib.Path({str(tmp_path / 'vendor-open')!r}).exists():\n"
        "    sys.exit('vendor closed: 503 Service Unavailable\\nretry later')\n"
        "print('order placed')\n"
    )
    told = tmp_path / "notices.jsonl"
    return {
        "when": "at(2026-01-01T18:30:00)",
        "order": {"customer": 42, "dish": "ramen"},
        "retry": {"attempts": 2, "backoff_seconds": 0},
        "on_failure": {"command": ["sh", "-c", f"cat >> {told}; echo >> {told}"]},
        "run": {"type": "python", "details": {"script": script}},
    }


def test_a_failed_order_is_retried_told_kept_shown_and_run_by_hand(
    run_cli: Run, tmp_path: Path
) -> None:
    root = tmp_path / "jobs"
    path = place(root, "order.json", order(tmp_path))
    first, second = run_cli("tick"), run_cli("tick")  # attempt 1, then its retry
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "failed, " in first.stderr and "attempt 1 failed, attempt 2 at" in first.stderr
    assert "1 retried" in first.stdout and "1 notices" in second.stdout
    state = read_json(path)
    assert state["last_result"]["status"] == "failed" and state["last_result"]["attempt"] == 2
    assert state["execution_count"] == 1 and "retry_pending" not in state
    told = (tmp_path / "notices.jsonl").read_text().splitlines()
    (notice,) = [json.loads(line) for line in told if line.strip()]
    assert (notice["reason"], notice["attempts"], notice["key"]) == ("failed", 2, "order.json")
    assert notice["run"] == order(tmp_path)["run"]

    # Kept, shown as failed with its error's first line, and found by status.
    listed = run_cli("ls", "--status", "failed")
    (_, row) = listed.stdout.splitlines()
    assert row.startswith("order.json") and row.endswith("failed: exited with status 1")
    assert run_cli("ls", "--status", "ok").stdout == f"no jobs with status 'ok' in {root}\n"
    (as_json,) = json.loads(run_cli("ls", "--json", "--status", "failed").stdout)
    assert as_json["error"] == "exited with status 1" and as_json["status"] == "failed"

    history = run_cli("show", "order.json", "--history").stdout.splitlines()
    assert history[0].split()[:4] == ["OCCURRENCE", "STARTED", "ATTEMPT", "STATUS"]
    assert [line.split()[2:4] for line in history[1:]] == [["2", "failed"], ["1", "failed"]]
    assert all(line.split()[0] == "2026-01-01T18:30:00Z" for line in history[1:])

    # The vendor opens; the order is run by hand, succeeds, and is deleted as its limit says.
    (tmp_path / "vendor-open").touch()
    manual = run_cli("run", "order.json")
    assert manual.returncode == 0, manual.stderr
    assert "ran order.json" in manual.stderr and "order placed" in manual.stderr
    assert not path.exists()


def test_run_of_a_failing_job_exits_1_and_records_it_by_hand(run_cli: Run, tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    path = place(root, "o.json", {**order(tmp_path), "when": "0 0 1 1 *"})
    result = run_cli("run", "o.json")
    assert result.returncode == 1, result.stderr
    state = read_json(path)
    assert state["last_result"]["manual"] is True and state["execution_count"] == 1
    assert "last_scheduled" not in state  # no occurrence taken: the schedule is untouched
    assert not (tmp_path / "notices.jsonl").exists()  # whoever ran it by hand saw it fail


def test_run_of_a_missing_job_is_one_line(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    result = run_cli("run", "nope.json")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"lambdacron: nope.json: no such job in {tmp_path / 'jobs'}"
    ]
