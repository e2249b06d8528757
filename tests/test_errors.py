"""The exception tree: one root, a built-in beside it, and every class public and drawn."""

from __future__ import annotations

import builtins

import lambdacron
import lambdacron.deploy  # its exception must be part of the same tree
from lambdacron import errors


def every_error() -> list[type[lambdacron.LambdacronError]]:
    found, stack = [], [lambdacron.LambdacronError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def test_every_lambdacron_error_is_public_and_drawn_in_the_tree() -> None:
    tree = errors.__doc__ or ""
    for cls in every_error():
        assert cls.__module__ == "lambdacron.errors", cls
        assert cls.__name__ in lambdacron.__all__, cls
        assert getattr(lambdacron, cls.__name__) is cls
        assert f" {cls.__name__}" in tree, cls


def test_every_error_below_the_root_also_subclasses_a_built_in() -> None:
    for cls in every_error():
        if cls is not lambdacron.LambdacronError:
            assert any(
                getattr(builtins, base.__name__, None) is base
                for base in cls.__mro__
                if base not in (Exception, BaseException, object)
            ), cls


def test_a_refused_deploy_step_is_an_os_error_like_a_failed_store() -> None:
    assert issubclass(lambdacron.deploy.DeployError, lambdacron.LambdacronError)
    assert issubclass(lambdacron.deploy.DeployError, OSError)
    assert not issubclass(lambdacron.deploy.DeployError, lambdacron.StoreError)
