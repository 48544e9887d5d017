"""Tests are moved, never weakened: the suite keeps at least as many test ids and asserts as recorded.

``counts.json`` holds the number of test ids ``pytest --collect-only -q`` lists for the whole
suite and the number of ``assert`` statements in ``tests/``. Raise the record when tests are
added; never lower it.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
RECORD = Path(__file__).with_name("counts.json")


def assert_statements() -> int:
    """``assert`` statements in every Python file under tests/."""
    return sum(
        isinstance(node, ast.Assert)
        for path in sorted(TESTS.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    )


def collected_test_ids() -> int:
    """Test ids the whole suite collects (``pytest --collect-only -q`` from the repository root)."""
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTEST_ADDOPTS": ""},
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return sum(1 for line in run.stdout.splitlines() if "::" in line)


def test_assert_statements_at_least_recorded() -> None:
    assert assert_statements() >= json.loads(RECORD.read_text())["asserts"]


@pytest.mark.slow
def test_collected_test_ids_at_least_recorded() -> None:
    assert collected_test_ids() >= json.loads(RECORD.read_text())["test_ids"]


if __name__ == "__main__":
    RECORD.write_text(json.dumps({"test_ids": collected_test_ids(), "asserts": assert_statements()}, indent=1) + "\n")
