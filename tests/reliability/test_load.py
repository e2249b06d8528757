"""2,000 jobs due in one tick: a bounded pool, bounded memory, every job recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import command_job, place, read_json, subprocess_env, utc
from lambdacron.actions.base import OUTPUT_LIMIT

# The tick runs in its own process, so its peak memory can be read off alone.
TICK = """
import json, sys
from datetime import datetime, timezone
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.store import LocalStore
from pathlib import Path
with Engine(LocalStore(Path(sys.argv[1])), default_registry(),
            clock=lambda: datetime.now(timezone.utc), workers=8) as engine:
    report = engine.tick(datetime(2026, 1, 1, 1, tzinfo=timezone.utc))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would include the size
# of the pytest process this one was forked from.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({**report.to_json(), "peak_rss_mb": int(hwm.split()[1]) / 1024}))
"""


@pytest.mark.slow
def test_two_thousand_due_jobs_with_chatty_ones(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    for i in range(1950):
        place(root, f"quiet/{i:04}.json", command_job("@hourly", ["true"]), utc(2026, 1, 1))
    for i in range(50):
        # 8 MB of output each: 400 MB in all if a runner buffered output whole.
        place(
            root,
            f"chatty/{i:02}.json",
            command_job("@hourly", ["sh", "-c", "yes lambdacron | head -c 8000000"]),
            utc(2026, 1, 1),
        )
    result = subprocess.run(
        [sys.executable, "-c", TICK, str(root)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert (summary["seen"], summary["due"], summary["ran"], summary["failed"]) == (
        2000,
        2000,
        2000,
        0,
    )
    for path in [*root.glob("quiet/*.json"), *root.glob("chatty/*.json")]:
        state = read_json(path)
        assert state["execution_count"] == 1 and state["last_result"]["status"] == "ok"
        assert len(state["last_result"]["output"].encode()) <= OUTPUT_LIMIT
    assert len(list(root.glob("quiet/*.json"))) == 1950
    assert summary["peak_rss_mb"] < 150, summary
    print(f"2000 jobs: tick {summary['duration_s']} s, peak RSS {summary['peak_rss_mb']:.0f} MB")
