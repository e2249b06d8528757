"""``package``: the Lambda zip is reproducible, carries its runtime and runs a tick alone."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lambdacron.package import build_zip


@pytest.fixture(scope="module")
def zip_bytes() -> bytes:
    return build_zip()


def test_the_zip_is_reproducible_and_holds_the_runtime(zip_bytes: bytes) -> None:
    assert build_zip() == zip_bytes
    names = zipfile.ZipFile(io.BytesIO(zip_bytes)).namelist()
    assert names == sorted(names)
    assert "lambdacron/handler.py" in names and "lambdacron/job.schema.json" in names
    assert not any(n.startswith("cronsim/") for n in names)  # no longer a runtime need
    assert "tzdata/zoneinfo/Europe/Berlin" in names
    assert not any(n.startswith(("boto3/", "botocore/")) or n.endswith(".pyc") for n in names)


def test_the_zip_runs_a_tick_in_a_clean_virtualenv(zip_bytes: bytes, tmp_path: Path) -> None:
    code = tmp_path / "code"
    zipfile.ZipFile(io.BytesIO(zip_bytes)).extractall(code)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "tz.json").write_text(
        json.dumps(
            {
                "when": "0 9 * * *",
                "timezone": "Europe/Berlin",
                "run": {"type": "python", "details": {"script": "print('from the zip')"}},
            }
        )
    )
    script = (
        "import sys, json; sys.path.insert(0, sys.argv[1])\n"
        "import lambdacron\n"
        "assert 'boto3' not in sys.modules\n"
        "print(json.dumps(lambdacron.lambda_handler({'time': '2099-01-01T08:00:00Z'}, None)))\n"
    )
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", script, str(code)],
        capture_output=True,
        text=True,
        env={"LAMBDACRON_STORE": str(jobs), "PATH": "/usr/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["ran"] == 1
    state = json.loads((jobs / "tz.json").read_text())
    assert state["last_scheduled"] == "2099-01-01T08:00:00Z"  # 09:00 in Berlin
    assert state["last_result"]["output"] == "from the zip\n"
