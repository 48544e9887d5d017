"""No product module outgrows one job: none over 700 lines, and each over 500 says at its top why it is one."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("hub", "identifiers", "connectors", "mappings", "validation", "identity", "e_license_store", "cases",
           "recognition", "pipeline", "rigs", "dags")  # fmt: skip
LIMIT, STATE_WHY = 700, 500


def _modules() -> list[tuple[Path, int]]:
    found = []
    for room in PRODUCT:
        for path in (ROOT / room).rglob("*.py"):
            if "migrations" in path.parts:
                continue  # one migration per file, whatever its length
            found.append((path, len(path.read_text(encoding="utf-8").splitlines())))
    return found


def test_no_product_module_is_over_the_limit() -> None:
    over = {str(p.relative_to(ROOT)): n for p, n in _modules() if n > LIMIT}
    assert not over, over


def test_every_long_module_says_why_it_is_one_job() -> None:
    silent = []
    for path, n in _modules():
        if n <= STATE_WHY:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if "One job" not in doc:
            silent.append(f"{path.relative_to(ROOT)} ({n} lines)")
    assert not silent, silent
