"""The engine: ticks, reports and the job inventory."""

from .report import JobEvent, Outcome, TickReport
from .tick import Engine, due_occurrence, window_start

__all__ = ["Engine", "JobEvent", "Outcome", "TickReport", "due_occurrence", "window_start"]
