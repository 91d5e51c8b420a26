"""The type checker rejects wrong arguments to ``delay_by`` and friends, and accepts right ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

HERE = Path(__file__).parent / "typing"


def _mypy(path: Path) -> tuple[str, int]:
    stdout, stderr, status = mypy_api.run(["--strict", "--no-incremental", str(path)])
    return stdout + stderr, status


def test_correct_uses_type_check() -> None:
    output, status = _mypy(HERE / "api_ok.py")
    assert status == 0, output


def test_each_wrong_use_is_a_type_error() -> None:
    source = (HERE / "api_bad.py").read_text().splitlines()
    expected = {n for n, line in enumerate(source, 1) if re.search(r"#\s*E:", line)}
    output, status = _mypy(HERE / "api_bad.py")
    reported = {int(m) for m in re.findall(r"api_bad\.py:(\d+): error", output)}
    assert status == 1
    assert expected - reported == set(), (
        f"no error on lines {sorted(expected - reported)}\n{output}"
    )
    assert reported - expected == set(), f"unexpected errors\n{output}"
