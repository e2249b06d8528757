"""Keep credentials out of job files and logs.

A run inherits the runner's environment (a command may need the function's AWS
credentials), so a job that prints its environment would copy them into ``last_result`` in
the job file. Before a result is recorded, every value of a sensitive-looking variable is
replaced by ``[redacted]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

SENSITIVE_NAME = re.compile(
    r"SECRET|TOKEN|PASSW|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_KEY|SESSION|SIGNATURE", re.IGNORECASE
)
#: Shorter values would redact ordinary words; real credentials are longer.
MIN_SECRET_LENGTH = 8
MARK = "[redacted]"


def secrets_in(*environments: Mapping[str, str]) -> tuple[str, ...]:
    values = {
        value
        for env in environments
        for name, value in env.items()
        if SENSITIVE_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH
    }
    return tuple(sorted(values, key=len, reverse=True))  # longest first: no partial leftovers


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MARK)
    return text


def tail(text: str, limit: int) -> str:
    """The last ``limit`` bytes of ``text`` in UTF-8, cut at a character boundary."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[-limit:].decode("utf-8", errors="ignore")
