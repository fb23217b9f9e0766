"""Contract tests, after datasette's: every hook is documented, has a docstring and has a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from plugins import hookspecs

REPOSITORY = Path(__file__).resolve().parents[2]
PLUGINS_DOC = REPOSITORY / "docs" / "plugins.md"
TESTS = REPOSITORY / "tests"


def hook_specifications() -> dict[str, object]:
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, marker)
    }


HOOKS = hook_specifications()


def argument_names(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_hookspecs_declare_hooks():
    assert HOOKS, "plugins/hookspecs.py declares no hooks"


@pytest.fixture(scope="module")
def plugins_doc() -> str:
    return PLUGINS_DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_is_documented_with_its_signature(name, plugins_doc):
    signature = f"{name}({', '.join(argument_names(HOOKS[name]))})"
    headings = re.findall(r"^#+\s+`?([^`\n]+?)`?\s*$", plugins_doc, flags=re.MULTILINE)
    assert signature in headings, f"docs/plugins.md has no heading {signature!r}"


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_arguments_are_documented(name, plugins_doc):
    # The hook's own section: from its heading to the next heading.
    heading = re.search(rf"^#+\s+`?{name}\(.*$", plugins_doc, flags=re.MULTILINE)
    assert heading, f"docs/plugins.md has no section for {name}"
    section = re.split(r"^#", plugins_doc[heading.end() :], maxsplit=1, flags=re.MULTILINE)[0]
    for argument in argument_names(HOOKS[name]):
        assert f"`{argument}`" in section, f"{name}: argument {argument!r} is not explained"


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_has_a_docstring(name):
    docstring = inspect.getdoc(HOOKS[name])
    assert docstring, f"{name} has no docstring"
    # It says what the hook returns and when it is called.
    assert "Return" in docstring
    assert "Called" in docstring


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_has_a_test(name):
    pattern = re.compile(rf"^\s*(async\s+)?def test_hook_{name}\b", re.MULTILINE)
    files = [
        path
        for path in TESTS.rglob("test_*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert files, f"no test named test_hook_{name} under tests/"
