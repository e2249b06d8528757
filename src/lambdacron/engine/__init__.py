"""The engine: ticks, reports and the job inventory."""

from .due import due_occurrence, window_start
from .report import JobEvent, Outcome, TickReport
from .tick import Engine

__all__ = ["Engine", "JobEvent", "Outcome", "TickReport", "due_occurrence", "window_start"]
