"""The runner's log lines: every event a tick counts is shown, in words a person reads."""

from __future__ import annotations

import pytest

from helpers import utc
from lambdacron.engine.report import JobEvent, Outcome, TickReport
from lambdacron.job import Status
from lambdacron.logs import event_record, lateness, render_event, short_duration

COUNTS = (
    "ran",
    "failed",
    "invalid",
    "store_errors",
    "deleted",
    "interrupted",
    "skipped",
    "internal_errors",
    "cancelled",
    "taken",
    "missed",
    "notices",
    "notices_failed",
)


def counted(event: JobEvent) -> bool:
    report = TickReport(utc(2026, 1, 1))
    report.add(event)
    return any(getattr(report, name) for name in COUNTS)


EVENTS = [
    JobEvent("k.json", outcome, "why", utc(2026, 1, 1, 18, 30), Status.OK) for outcome in Outcome
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: str(e.outcome))
def test_every_event_the_tick_summary_counts_has_a_log_line(event: JobEvent) -> None:
    line = render_event(event)
    if counted(event):
        assert line is not None and "k.json" in line
    else:
        assert line is None


def test_a_job_left_by_a_stopping_runner_is_shown_as_skipped() -> None:
    event = JobEvent(
        "k.json",
        Outcome.NOT_STARTED,
        "the runner is stopping; left for the next tick",
        utc(2026, 1, 1, 18, 30),
    )
    assert render_event(event) == (
        "skipped k.json (scheduled 2026-01-01T18:30:00Z): "
        "the runner is stopping; left for the next tick"
    )
    assert event_record(event)["level"] == "INFO"


def test_an_internal_error_is_shown_once_and_logged_as_an_error() -> None:
    event = JobEvent("k.json", Outcome.INTERNAL_ERROR, "internal error: KeyError: 'x'")
    assert render_event(event) == "internal error k.json: KeyError: 'x'"
    assert event_record(event)["level"] == "ERROR"


@pytest.mark.parametrize("outcome", [Outcome.INVALID, Outcome.STORE_ERROR, Outcome.INTERNAL_ERROR])
def test_failures_of_the_file_the_store_or_lambdacron_are_errors(outcome: Outcome) -> None:
    assert event_record(JobEvent("k.json", outcome, "why"))["level"] == "ERROR"


def test_a_store_error_names_its_key_once() -> None:
    event = JobEvent("a.json", Outcome.STORE_ERROR, "a.json: cannot write: Permission denied")
    assert render_event(event) == "store error a.json: cannot write: Permission denied"
    whole = JobEvent("", Outcome.STORE_ERROR, "cannot list 'jobs': Permission denied")
    assert render_event(whole) == "store error: cannot list 'jobs': Permission denied"


def test_a_key_cannot_forge_a_line_of_the_log() -> None:
    line = render_event(JobEvent("a\nran b.json: ok", Outcome.INTERNAL_ERROR, "boom"))
    assert line is not None and "\n" not in line


def test_a_run_its_runner_stopped_counts_as_interrupted_not_failed() -> None:
    report = TickReport(utc(2026, 1, 1))
    report.add(JobEvent("a.json", Outcome.RAN, "stopped", None, Status.INTERRUPTED))
    report.add(JobEvent("b.json", Outcome.RAN, "exit 1", None, Status.FAILED))
    report.add(JobEvent("c.json", Outcome.RAN, "", None, Status.OK))
    assert (report.ran, report.failed, report.interrupted) == (3, 1, 1)
    assert "1 failed" in report.summary() and "1 interrupted" in report.summary()


@pytest.mark.parametrize(
    ("milliseconds", "said", "cell"),
    [
        (12, "12 ms late", "12ms"),
        (3_400, "3.4 s late", "3.4s"),
        (-500, "500 ms early", "-500ms"),
        (-82_333, "1 min early", "-1min"),  # a tick given a --now ahead of the clock
    ],
)
def test_lateness_reads_the_same_either_side_of_the_time(
    milliseconds: int, said: str, cell: str
) -> None:
    assert lateness(milliseconds) == said
    assert short_duration(milliseconds) == cell
