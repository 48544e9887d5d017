"""Identifier modules are pure: importing one loads no SQLAlchemy, no ORM, no settings, no database."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

MODULES = [
    "identifiers.resident_id",
    "identifiers.uscc",
    "identifiers.org_code",
    "identifiers.reg_no",
    "identifiers.taxpayer_id",
    "identifiers.supervision_code",
    "identifiers.normalize",
    "identifiers.shapes",
    "identifiers.vectorized",
]
HEAVY = ["sqlalchemy", "hub.db", "hub.models", "hub.settings", "pydantic_settings", "identity", "mappings"]


@pytest.mark.parametrize("module", MODULES)
def test_importing_an_identifier_module_loads_nothing_heavy(module: str) -> None:
    code = (
        f"import importlib, json, sys; importlib.import_module({module!r}); "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == []


def test_an_identifier_module_checks_a_code_in_the_fresh_interpreter() -> None:
    # the interpreter above really imported the module: it answers
    code = "from identifiers import resident_id; print(resident_id.is_valid('11010519491231002X'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "True"
