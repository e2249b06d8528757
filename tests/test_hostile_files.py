"""A user's job files under the runner's writes, through the real CLI: what the file is on
disk besides its JSON (its permissions, a symbolic link naming it) survives every run."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from conftest import Run
from helpers import append_job, command_job, place, read_json

NOW = "2026-01-01T01:00:00Z"


def store_dir(tmp_path: Path) -> Path:
    root = tmp_path / "jobs"
    root.mkdir(exist_ok=True)
    return root


def test_a_run_keeps_the_permissions_of_the_job_file(run_cli: Run, tmp_path: Path) -> None:
    # A job whose env holds a credential is made private with chmod 600; its claim and
    # result must not turn it into a new file readable by everyone.
    root = store_dir(tmp_path)
    modes = (0o600, 0o640, 0o400, 0o444, 0o660, 0o604, 0o700, 0o755)
    for mode in modes:
        path = place(root, f"m{mode:o}.json", command_job("@hourly", ["true"]))
        path.chmod(mode)
    # Run as root, the runner would make a user's file its own, so that the user could no
    # longer edit it in place; as a user it owns what it writes, so the owner is its own.
    owner = (65534, 65534) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    os.chown(root / "m640.json", *owner)
    result = run_cli("tick", "--store", str(root), "--now", NOW)
    assert f"{len(modes)} ran" in result.stdout, result.stderr
    manual = run_cli("run", "m600.json", "--store", str(root))
    assert manual.returncode == 0, manual.stderr
    for mode in modes:
        path = root / f"m{mode:o}.json"
        assert read_json(path)["execution_count"] == (2 if mode == 0o600 else 1)
        assert stat.S_IMODE(path.stat().st_mode) == mode, f"{path.name}: {path.stat().st_mode:o}"
    kept = (root / "m640.json").stat()
    assert (kept.st_uid, kept.st_gid) == owner


def test_a_symbolic_link_inside_the_store_stays_a_link_and_its_file_runs_once(
    run_cli: Run, tmp_path: Path
) -> None:
    # link.json names real.json: one file, so one run per occurrence, its state in that
    # file, and the user's link left a link (not replaced by a copy that then drifts).
    root = store_dir(tmp_path)
    ran = tmp_path / "ran.txt"
    place(root, "real.json", append_job("@hourly", ran, "run"))
    (root / "sub").mkdir()
    (root / "link.json").symlink_to("real.json")
    (root / "sub" / "up.json").symlink_to("../real.json")
    result = run_cli("tick", "--store", str(root), "--now", NOW)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert ran.read_text() == "run\n", result.stderr
    assert os.readlink(root / "link.json") == "real.json"
    assert os.readlink(root / "sub" / "up.json") == "../real.json"
    state = read_json(root / "real.json")
    assert (state["execution_count"], state["last_scheduled"]) == (1, NOW)
    assert "claim" not in state
    # The next tick at the same time finds the occurrence run, through every name.
    again = run_cli("tick", "--store", str(root), "--now", NOW)
    assert "0 ran" in again.stdout, again.stderr
    assert ran.read_text() == "run\n"


# The job saves its own file in place, as an editor or `cat new > a.json` does: it empties
# the file, and a moment later (in a process of its own, which outlives the run) writes the
# new text, its note changed. The runner's write-back comes in that moment.
SAVE_IN_PLACE = """
import json, os, subprocess, sys
path = os.path.join(sys.argv[1], os.environ["LAMBDACRON_JOB"])
with open(path) as f:
    document = json.load(f)
document["note"] = "edited"
open(path, "w").close()
later = "import sys, time; time.sleep(0.5); open(sys.argv[1], 'w').write(sys.argv[2])"
subprocess.Popen(
    [sys.executable, "-c", later, path, json.dumps(document)],
    start_new_session=True,
    stdin=subprocess.DEVNULL,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
"""


def test_a_result_waits_out_a_save_in_place_instead_of_being_dropped(
    run_cli: Run, tmp_path: Path
) -> None:
    root = store_dir(tmp_path)
    job = {
        "when": "@hourly",
        "note": "as placed",
        "retry": {"attempts": 2, "on_interrupted": True},
        "run": {"type": "python", "details": {"script": SAVE_IN_PLACE, "args": [str(root)]}},
    }
    path = place(root, "a.json", job)
    result = run_cli("tick", "--store", str(root), "--now", NOW)
    assert "1 ran" in result.stdout, result.stderr
    wait_for = time.monotonic() + 60
    while b"edited" not in path.read_bytes() and time.monotonic() < wait_for:
        time.sleep(0.05)
    state = read_json(path)
    # The user's save is kept, and the run that ended ok is recorded as such: not left
    # claimed, to be taken for interrupted (and, with on_interrupted, run a second time).
    assert state["note"] == "edited"
    assert "claim" not in state, result.stderr
    assert state["last_result"]["status"] == "ok"
    again = run_cli("tick", "--store", str(root), "--now", NOW)
    assert "0 ran" in again.stdout and "interrupted" not in again.stdout, again.stderr
