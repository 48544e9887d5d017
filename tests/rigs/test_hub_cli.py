"""The ``hub`` entry point: every part's commands are reachable, and a named command loads only its part."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner


def test_help_lists_every_part() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rigs.cli", "--help"], capture_output=True, text=True, timeout=300, check=True
    ).stdout
    for name in ("migrate", "sandbox", "connectors", "mappings", "identity", "licenses", "serve", "demo", "audit"):
        assert name in out
    assert "│ run " in out  # `hub run MAPPING`: one feed end to end (rigs/run_feed.py)


def test_named_command_imports_only_its_part() -> None:
    code = (
        "import sys; sys.argv=['hub','identity','normalize','11010519491231002x'];"
        "import rigs.cli as c\n"
        "try:\n    c.main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED', 'recognition.app' in sys.modules, 'e_license_store.cli' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True).stdout
    first = json.loads(out.splitlines()[0])
    assert first["kind"] == "resident_id" and first["canonical"] == "11010519491231002X"
    assert out.strip().endswith("LOADED False False")


def test_migrate_command(hub_db_url: str) -> None:
    from rigs.cli import app

    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert "migrated" in result.output
