"""The function's handler string names the entry point, without AWS."""

from __future__ import annotations

import importlib

import lambdacron
from lambdacron import handler
from lambdacron.deploy.plan import HANDLER


def test_the_handler_string_deploy_configures_resolves_to_the_entry_point() -> None:
    # As the Lambda runtime does: import the module, take the attribute.
    module, _, name = HANDLER.rpartition(".")
    assert getattr(importlib.import_module(module), name) is handler.lambda_handler
    assert lambdacron.lambda_handler is handler.lambda_handler
