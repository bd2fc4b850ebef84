"""The shape issue 16 reached stays: no module over MODULE_MAX lines, no class over CLASS_MAX.

A module or class that grows past these is the sign that a concern wants a room of its own
(README "Code map"); split it rather than raise the numbers.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "p2pchat"
MODULE_MAX = 600
CLASS_MAX = 420


def _sources() -> list[Path]:
    found = sorted(PACKAGE.rglob("*.py"))
    assert len(found) > 20, found  # the package is there (not an empty walk)
    return found


def test_no_module_is_too_long() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in _sources()
            if (n := p.read_text(encoding="utf-8").count("\n")) > MODULE_MAX}
    assert not long, f"modules over {MODULE_MAX} lines: {long}"


def test_no_class_is_too_long() -> None:
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > CLASS_MAX:
                    long[f"{path.relative_to(PACKAGE)}:{node.name}"] = size
    assert not long, f"classes over {CLASS_MAX} lines: {long}"


def test_the_limits_catch_a_long_class() -> None:
    """The class check reads what it should: a made-up long class is caught."""
    body = "\n".join(f"    x{i} = {i}" for i in range(CLASS_MAX + 5))
    tree = ast.parse(f"class Big:\n{body}\n")
    big = tree.body[0]
    assert isinstance(big, ast.ClassDef)
    assert (big.end_lineno or 0) - big.lineno + 1 > CLASS_MAX
