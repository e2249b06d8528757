"""The README's module map ("Inside") names every module of the package."""

from __future__ import annotations

import re
from pathlib import Path

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
