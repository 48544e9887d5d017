"""``hub sandbox up|status|down`` from the command line, twice without clean-up.

(``hub demo`` itself runs the whole pipeline through Airflow and is tested with it; here
its sandbox check, :func:`rigs.demo.check_sandboxes`, runs through ``hub sandbox status``.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

SMALL = ["--persons", "200", "--enterprises", "60", "--properties", "80"]


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from hub.settings import reset_settings

    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    reset_settings()
    yield tmp_path
    reset_settings()


def sandbox_cli(*args: str) -> Result:
    from rigs.sandbox_cli import app

    return CliRunner().invoke(app, list(args))


@pytest.mark.slow
def test_up_status_twice_then_down(home: Path) -> None:
    pids = []
    try:
        for _ in range(2):
            up = sandbox_cli("up", *SMALL)
            assert up.exit_code == 0, up.output
            state = json.loads((home / "sandbox" / "state.json").read_text())
            pids.append(int((home / "sandbox" / "tax.pid").read_text()))
            assert Path(f"/proc/{pids[-1]}").exists()
            status = sandbox_cli("status")
            assert status.exit_code == 0, status.output
            assert status.output.count(" ok ") == 4, status.output
            assert "FAIL" not in status.output
            assert state["tax"]["wsdl_url"] in status.output
        # the second `up` replaced the first service instead of starting a second one
        assert pids[0] != pids[1]
        assert not _running(pids[0])
    finally:
        down = sandbox_cli("down")
    assert down.exit_code == 0
    assert not _running(pids[-1])
    assert not (home / "sandbox" / "state.json").exists()
    status = sandbox_cli("status")
    assert status.exit_code == 1 and "not up" in status.output


def _running(pid: int) -> bool:
    try:
        return b"sandbox.tax.server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_status_reports_failure_when_a_sandbox_is_gone(tmp_path: Path) -> None:
    from rigs.demo import check_sandboxes

    state = {
        "tax": {"wsdl_url": "http://127.0.0.1:9/tax?wsdl", "username": "hub"},
        "public_security": {"sqlalchemy_url": f"sqlite:///{tmp_path / 'missing.db'}", "table": "person_registry"},
        "commerce": {"odbc_connection_string": f"DRIVER={{SQLite3}};Database={tmp_path / 'none.db'};"},
        "land": {
            "outbox_dir": str(tmp_path / "none"),
            "xsd_path": str(Path("sandbox/land/land_exchange.xsd").resolve()),
        },
    }
    checks = check_sandboxes(state)
    assert [c.ok for c in checks] == [False, False, False, False]
    assert all(c.detail for c in checks)


def test_generator_bench_smoke() -> None:
    from bench.bench_generator import run

    f = run(5_000, 1_000)  # what `--smoke` runs
    # the city and the residents table alone hold every person asked for; records add up the city's tables
    assert f["counts"]["persons"] == f["residents"] == 5_000
    assert f["counts"]["enterprises"] == 5_000 // 4
    assert f["records"] == sum(v for k, v in f["counts"].items() if k != "ground_truth")
    assert f["dirt"]  # the realised dirt is reported
