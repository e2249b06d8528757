from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_cli(tmp_path: Path) -> Run:
    """Run ``python -m lambdacron ARGS`` as a real subprocess in a temp working directory."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 60, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        # The caller's environment must not leak a store into the test.
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDACRON_")}
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "lambdacron", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=cwd or tmp_path,
        )

    return run
