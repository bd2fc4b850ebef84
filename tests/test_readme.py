"""README.rst is the user's manual: it must parse as reStructuredText with no warning (a
table a row short of its border, or a merge's leftover ``=======``, renders as garbage on the
project page and hides the figures)."""

from __future__ import annotations

import io
from pathlib import Path

import docutils.core

README = Path(__file__).resolve().parent.parent / "README.rst"


def test_readme_parses_without_warnings() -> None:
    warnings = io.StringIO()
    docutils.core.publish_doctree(README.read_text(encoding="utf-8"), settings_overrides={
        "warning_stream": warnings, "report_level": 2, "halt_level": 5})
    assert warnings.getvalue() == ""


def test_a_broken_table_is_caught() -> None:
    """The check itself can fail: a table row outside its borders is reported."""
    warnings = io.StringIO()
    docutils.core.publish_doctree("text\n\nA  B\n== ==\n1  2\n== ==\n  x\n", settings_overrides={
        "warning_stream": warnings, "report_level": 2, "halt_level": 5})
    assert warnings.getvalue() != ""
