"""Actions: one module per ``run.type``."""

from __future__ import annotations

from collections.abc import Iterable

from . import command, lambda_, python
from .base import Action, ActionRegistry, DetailsSpec, Result, RunContext, RunType, Spec, Status
from .command import CommandAction
from .lambda_ import LambdaAction
from .python import PythonAction

__all__ = [
    "SPECS",
    "Action",
    "ActionRegistry",
    "DetailsSpec",
    "Result",
    "RunContext",
    "RunType",
    "Spec",
    "Status",
    "default_registry",
]

#: How each run type reads its ``run.details``. A new type is a module with its Action and
#: its DETAILS, a RunType name, and a line here and in ``default_registry``.
SPECS: dict[RunType, DetailsSpec] = {
    RunType.COMMAND: command.DETAILS,
    RunType.PYTHON: python.DETAILS,
    RunType.LAMBDA: lambda_.DETAILS,
}


def default_registry(allowed: Iterable[RunType] | None = None) -> dict[RunType, Action]:
    """Every built-in action, or only the ``allowed`` types (an operator's restriction)."""
    actions: list[Action] = [CommandAction(), PythonAction(), LambdaAction()]
    keep = set(RunType) if allowed is None else set(allowed)
    return {a.run_type: a for a in actions if a.run_type in keep}
