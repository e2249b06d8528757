"""Settings read from the environment, in one place. Only entry points call ``from_env``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import UsageError
from .job import RunType
from .store import DEFAULT_STORE
from .store.base import DEFAULT_MAX_JOB_BYTES


def parse_allowed_types(text: str, name: str = "LAMBDACRON_ALLOWED_TYPES") -> frozenset[RunType]:
    """``"command,lambda"`` to run types; an unknown name is a usage error naming ``name``,
    the setting the text came from."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    try:
        return frozenset(RunType(n) for n in names)
    except ValueError:
        known = ", ".join(t.value for t in RunType)
        raise UsageError(f"{name}: {text!r}; use a list of {known}") from None


@dataclass(frozen=True)
class Settings:
    store: str = DEFAULT_STORE
    #: Run types this runner accepts; a job of another type is reported, never run.
    allowed_types: frozenset[RunType] = frozenset(RunType)
    max_job_bytes: int = DEFAULT_MAX_JOB_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        allowed = env.get("LAMBDACRON_ALLOWED_TYPES")
        max_bytes = env.get("LAMBDACRON_MAX_JOB_BYTES")
        if max_bytes is not None and (not max_bytes.isdigit() or int(max_bytes) < 1):
            raise UsageError(f"LAMBDACRON_MAX_JOB_BYTES: {max_bytes!r} is not a positive number")
        return cls(
            store=env.get("LAMBDACRON_STORE") or DEFAULT_STORE,
            allowed_types=parse_allowed_types(allowed) if allowed else frozenset(RunType),
            max_job_bytes=int(max_bytes) if max_bytes else DEFAULT_MAX_JOB_BYTES,
        )
