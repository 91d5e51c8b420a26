"""docs/reliability.md names a test for each guarantee: every one it names must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"


def test_every_test_the_reliability_page_links_to_exists() -> None:
    text = DOC.read_text()
    links = re.findall(
        r"\[`(test_\w+\.py)::(test_\w+)`\]\(\.\./(tests/(?:faults/|brokers/)?test_\w+\.py)\)", text
    )
    assert len(links) >= 20, "the page should tie each guarantee to a test"
    for name, test, path in links:
        assert path.endswith(name), f"link text {name} points at {path}"
        tree = ast.parse((ROOT / path).read_text())
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert test in defined, f"{path} has no {test}"


def test_the_readme_links_the_reliability_page() -> None:
    assert "docs/reliability.md" in (ROOT / "README.md").read_text()
