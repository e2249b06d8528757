"""Job keys and sharding, without any store behind them: what a listing makes of a name,
the shard of a key, and ``tick --shards`` on a directory."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Run
from helpers import command_job, place, utc
from lambdacron.errors import InvalidKeyError
from lambdacron.store.keys import check_relative_key, listed_key, new_key, shard_of

#: Names as a listing meets them: odd characters, '.' and '..', backslashes, bytes that
#: are not UTF-8 (as os.fsdecode gives them), mostly ending in .json.
NAMES = st.one_of(
    st.text(alphabet="a./\\\t\n\x00\udce9 é", max_size=10).map(lambda name: name + ".json"),
    st.text(max_size=12),
)


@settings(max_examples=500, deadline=None)
@given(name=NAMES)
def test_a_listed_name_is_a_job_key_exactly_when_the_key_rules_accept_it(name: str) -> None:
    try:
        key: str | None = check_relative_key(name)
    except InvalidKeyError:
        key = None
    listed = listed_key(name)
    if key is not None:
        assert listed == (key, None)
        return
    if listed is None:  # passed over in silence: not meant as a job, or reserved
        parts = name.split("/")
        assert not name.endswith(".json") or any(
            p.startswith(".") and p not in (".", "..") for p in parts
        )
        return
    shown, problem = listed
    assert problem is not None and problem.endswith("; lambdacron cannot address it")
    # One printable line, never mistaken for a job's key.
    assert shown.isprintable()
    with pytest.raises(InvalidKeyError):
        check_relative_key(shown)


def test_a_name_that_is_not_utf8_has_a_shard() -> None:
    name = b"caf\xe9.json".decode("utf-8", "surrogateescape")
    assert shard_of(name, 4) in range(4)
    assert shard_of("café.json", 4) == shard_of("café.json".encode().decode(), 4)


def test_generated_keys_spread_evenly_over_shards() -> None:
    keys = [new_key() for _ in range(4000)]
    assert all(k[2] == "/" and k.endswith(".json") for k in keys)
    per_shard = Counter(shard_of(k, 4) for k in keys)
    assert set(per_shard) == {0, 1, 2, 3}
    assert min(per_shard.values()) > 700  # 1000 each on average


def appender(out: Path) -> dict[str, Any]:
    return command_job("@hourly", ["sh", "-c", f'echo "$LAMBDACRON_JOB" >> {out}'])


def test_tick_with_shards_runs_every_due_job_once(run_cli: Run, tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    out = tmp_path / "out.txt"
    for _ in range(80):
        place(root, new_key(), appender(out), utc(2026, 1, 1))
    result = run_cli("tick", "--shards", "4", "--now", "2026-01-01T01:00:00Z")
    assert result.returncode == 0, result.stderr
    assert "80 jobs, 80 due, 80 ran, 0 failed, 0 invalid" in result.stdout
    assert result.stdout.strip().endswith("(4 shards)")
    assert sorted(Counter(out.read_text().split()).values()) == [1] * 80
    # Each shard keeps its own index.
    assert sorted(p.name for p in (root / ".lambdacron").glob("index-*.json")) == [
        f"index-{i}-of-4.json" for i in range(4)
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T12:00:01.000Z", datetime(2026, 11, 27, 12, 0, 1, tzinfo=UTC)),
        ("2026-11-27T14:00:01+02:00", datetime(2026, 11, 27, 12, 0, 1, tzinfo=UTC)),
        ("2026-11-27T12:00:01", datetime(2026, 11, 27, 12, 0, 1, tzinfo=UTC)),
        ("Fri, 27 Nov 2026 12:00:01 GMT", datetime(2026, 11, 27, 12, 0, 1, tzinfo=UTC)),
    ],
)
def test_s3_timestamps_in_bodies_and_headers_parse_to_the_same_instant(
    text: str, expected: datetime
) -> None:
    from lambdacron.store.s3 import _timestamp

    parsed = _timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() is not None
