"""Actions: one module per ``run.type``."""

from __future__ import annotations

from collections.abc import Iterable

from ..job import RunType
from .base import Action, ActionRegistry, Result, RunContext
from .command import CommandAction
from .lambda_ import LambdaAction
from .python import PythonAction

__all__ = ["Action", "ActionRegistry", "Result", "RunContext", "default_registry"]


def default_registry(allowed: Iterable[RunType] | None = None) -> dict[RunType, Action]:
    """Every built-in action, or only the ``allowed`` types (an operator's restriction)."""
    actions: list[Action] = [CommandAction(), PythonAction(), LambdaAction()]
    keep = set(RunType) if allowed is None else set(allowed)
    return {a.run_type: a for a in actions if a.run_type in keep}
