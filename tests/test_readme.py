"""The README and docs/*.md against the code: the module map, links, examples and limits."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "lambdacron"
#: Modules with no room of their own: the package's front door and its version.
UNMAPPED = {"__init__.py", "__main__.py", "_version.py"}


def inside() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^Inside\n---\n(.*?)^\w[^\n]*\n---\n", text, re.S | re.M)
    assert match, "the README has no Inside section"
    return match.group(1)


def test_every_module_of_the_package_is_named_in_the_readme_s_module_map() -> None:
    section = inside()
    named = set(re.findall(r"`([\w/]+\.py)`", section))
    missing = [
        path.relative_to(PACKAGE).as_posix()
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name not in UNMAPPED
        and path.relative_to(PACKAGE).as_posix() not in named
        and path.name not in named
    ]
    assert missing == []


def test_every_module_the_map_names_exists() -> None:
    section = inside()
    modules = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    names = {p.name for p in PACKAGE.rglob("*.py")}
    stale = [
        name
        for name in re.findall(r"`([\w/]+\.py)`", section)
        if name not in modules and name not in names
    ]
    assert stale == []


# --- The examples and figures a user reads, checked against what the code does. ---

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text()
    found = {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
    found |= {slug(h) for h in re.findall(r"^(\S[^\n]*)\n---+$", text, re.M)}
    found |= set(re.findall(r'<a id="([^"]+)"', text))
    return found


def test_every_link_of_the_docs_leads_to_a_file_and_a_heading_that_exist() -> None:
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"\w+://", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (doc.parent / path).resolve() if path else doc
            if not linked.exists() or (anchor and anchor not in anchors(linked)):
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []


def job_examples() -> list[tuple[str, str]]:
    """Every ```json block of the docs that is a whole job file (it has `when` and `run`)."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"^```json\n(.*?)^```", doc.read_text(), re.S | re.M):
            if '"when"' in block and '"run"' in block:
                found.append((doc.name, block))
    return found


def test_every_job_file_the_docs_show_is_valid() -> None:
    from lambdacron import jobfile

    examples = job_examples()
    assert len(examples) >= 3  # the README's two samples and the notices page's job
    problems = {
        (name, block): [str(p) for p in jobfile.load("example.json", block.encode())[1]]
        for name, block in examples
    }
    assert {k: v for k, v in problems.items() if v} == {}


def console_examples() -> list[tuple[str, str]]:
    """Each `$ lambdacron ...` line of a ```console block and the lines printed under it."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"^```console\n(.*?)^```", doc.read_text(), re.S | re.M):
            for command, printed in re.findall(r"^\$ (.+)\n((?:(?!\$ ).*\n)*)", block, re.M):
                found.append((command, printed))
    return found


def test_every_console_example_prints_what_the_docs_show(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from lambdacron import cli

    examples = console_examples()
    assert len(examples) >= 2
    for command, printed in examples:
        argv = shlex.split(command)
        assert argv[0] == "lambdacron"
        code = cli.main(argv[1:])
        out, err = capsys.readouterr()
        # The docs show what a terminal shows: both streams; an error exits 2, one line.
        assert (out + err, code) == (printed, 2 if err else 0), command


def field_row(field: str) -> str:
    row = re.search(rf"^\| `{re.escape(field)}` \| (.*)$", (ROOT / "README.md").read_text(), re.M)
    assert row, f"the README's job-file table has no row for {field}"
    return row.group(1)


def number(text: str) -> int:
    """A figure as the README writes it: "2,592,000", "10^9"."""
    base, _, exponent = text.replace(",", "").partition("^")
    power: int = int(base) ** int(exponent or 1)
    return power


def refused(document: dict[str, Any]) -> list[str]:
    from lambdacron import jobfile

    return [str(p) for p in jobfile.load("x.json", json.dumps(document).encode())[1]]


UTC_TIME = datetime(2026, 12, 1, 17, 30, tzinfo=UTC)

JOB = {"when": "* * * * *", "run": {"type": "command", "details": {"command": ["true"]}}}


def test_the_job_file_table_states_the_defaults_the_reader_applies() -> None:
    from lambdacron import jobfile

    job = jobfile.load("x.json", json.dumps(JOB).encode())[0]
    assert job is not None
    at = jobfile.load("x.json", json.dumps({**JOB, "when": "at(2026-12-01)"}).encode())[0]
    assert at is not None
    stated = {
        field: int(re.match(r"`(\d+)`", field_row(field)).group(1))  # type: ignore[union-attr]
        for field in ("timeout_seconds", "history_limit", "max_number_executions")
    }
    assert stated == {
        "timeout_seconds": job.timeout_seconds,
        "history_limit": job.history_limit,
        "max_number_executions": job.max_number_executions,
    }
    assert "`1` for `at(...)`" in field_row("max_number_executions")
    assert at.max_number_executions == 1


@pytest.mark.parametrize(
    ("field", "limit", "document"),
    [
        ("max_number_executions", r"at most ([\d^,]+)", lambda n: {"max_number_executions": n}),
        ("timeout_seconds", r"at most ([\d,]+)", lambda n: {"timeout_seconds": n}),
        ("deadline_seconds", r"at most ([\d,]+)", lambda n: {"deadline_seconds": n}),
        ("history_limit", r"at most ([\d,]+)", lambda n: {"history_limit": n}),
        ("retry", r"1 to ([\d,]+)", lambda n: {"retry": {"attempts": n}}),
        (
            "retry",
            r"each backoff 0 to ([\d,]+)",
            lambda n: {"retry": {"attempts": 2, "backoff_seconds": n, "max_backoff_seconds": n}},
        ),
    ],
)
def test_each_limit_the_job_file_table_states_is_the_one_the_reader_keeps(
    field: str, limit: str, document: Callable[[int], dict[str, Any]]
) -> None:
    stated = re.search(limit, field_row(field))
    assert stated, f"the row of {field} states no limit matching {limit!r}"
    highest = number(stated.group(1))
    assert refused({**JOB, **document(highest)}) == []
    assert refused({**JOB, **document(highest + 1)}) != []


def table_examples(path: Path, header: str) -> list[str]:
    """The backquoted expressions in the second column of the table headed `header`."""
    text = path.read_text()
    start = text.index(header)
    rows = re.findall(r"^\|[^|\n]*\|([^|\n]*)\|", text[start:].split("\n\n")[0], re.M)
    # A cell may end in a remark in parentheses: "`30 18 * * * * *` (..., then `*`)".
    cells = [re.sub(r" \((?:[^()`]|`[^`]*`)*\)\s*$", "", cell) for cell in rows[2:]]
    return [expr for cell in cells for expr in re.findall(r"`([^`]+)`", cell)]


def test_every_expression_the_schedule_tables_show_parses() -> None:
    from lambdacron import parse

    expressions = table_examples(ROOT / "README.md", "| form | example |")
    expressions += table_examples(ROOT / "docs" / "schedules.md", "| form | example | meaning |")
    assert len(expressions) >= 20
    for expression in expressions:
        parse(expression)


#: The inputs behind docs/schedules.md's sample error messages, in the order printed.
ERROR_INPUTS = [
    ("75 * * * *", "UTC"),
    ("0 0 1 FOO *", "UTC"),
    ("0 5-1 * * *", "UTC"),
    ("0 0 ? * MON#6", "UTC"),
    ("0 0 30 2 *", "UTC"),
    ("0 0 * * *", "Mars/Olympus"),
]


def test_the_sample_schedule_errors_are_the_messages_the_parser_gives() -> None:
    from lambdacron import ScheduleError, parse

    text = (ROOT / "docs" / "schedules.md").read_text()
    section = text[text.index("## Errors") :]
    printed = re.search(r"^```\n(.*?)^```", section, re.S | re.M)
    assert printed
    given = []
    for expression, zone in ERROR_INPUTS:
        with pytest.raises(ScheduleError) as caught:
            parse(expression, zone)
        given.append(str(caught.value))
    assert printed.group(1).splitlines() == given


def test_the_claim_held_for_a_notice_in_docs_notices_has_the_deadline_a_runner_writes() -> None:
    from lambdacron.engine.claims import TELLING_GRACE
    from lambdacron.times import parse_instant

    text = (ROOT / "docs" / "notices.md").read_text()
    block = re.search(r'^```json\n("claim": .*?)^```', text, re.S | re.M)
    assert block, "docs/notices.md shows no claim held for a notice"
    claim = json.loads("{" + block.group(1) + "}")["claim"]
    held = parse_instant(claim["deadline"], UTC) - parse_instant(claim["started"], UTC)
    assert held == TELLING_GRACE


def test_the_sample_notice_and_its_field_table_have_the_fields_a_notice_has() -> None:
    from lambdacron.notify import Notice, NoticeReason

    text = (ROOT / "docs" / "notices.md").read_text()
    section = text[text.index("## The notice") : text.index("## Delivery")]
    sample = json.loads(re.search(r"^```json\n(.*?)^```", section, re.S | re.M).group(1))  # type: ignore[union-attr]
    table = re.findall(r"^\| `(\w+)` \|", section, re.M)
    notice = Notice(
        key=sample["key"],
        store=sample["store"],
        occurrence=UTC_TIME,
        reason=NoticeReason(sample["reason"]),
        attempts=sample["attempts"],
        last_result=sample["last_result"],
        run=sample["run"],
        sent_at=UTC_TIME,
    ).to_json()
    assert list(sample) == list(notice) == table
