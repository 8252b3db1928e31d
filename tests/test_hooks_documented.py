"""Every hook is documented (docstring, generated reference) and tested."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from b12drugs import hookdocs, hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = hookdocs.hook_names()


def test_there_are_hooks() -> None:
    assert len(HOOKS) >= 8


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_full_docstring(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert ":return:" in doc, f"{name}: say what is returned"
    assert "firstresult" in doc, f"{name}: say whether it is firstresult"
    for param in inspect.signature(getattr(hookspecs, name)).parameters:
        assert f":param {param}:" in doc, f"{name}: document argument {param}"


def test_generated_reference_is_current() -> None:
    committed = (ROOT / "docs" / "hooks.md").read_text()
    assert committed == hookdocs.render(), "run: python -m b12drugs.hookdocs > docs/hooks.md"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_implemented_and_exercised_by_a_test(name: str) -> None:
    """A hook counts as tested when a test module other than this one names it or the
    record type / facade method it feeds."""
    facade = name.removeprefix("b12drugs_")
    tests = [p for p in (ROOT / "tests").glob("test_*.py") if p.name != Path(__file__).name]
    text = "\n".join(p.read_text() for p in tests)
    assert name in text or f"hooks.{facade}" in text, f"no test exercises {name}"
