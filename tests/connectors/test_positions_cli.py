"""``hub connectors state|reset``: read positions, batches not yet published, audited moves."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from connectors.sync import record_staged, save_state
from hub.db import get_engine, session_scope
from hub.models import StagedBatch, SyncState
from pipeline.positions_cli import app

runner = CliRunner()
REPO = Path(__file__).parents[2]
RESIDENT_ID = "110105194912310029"
CURSOR = {"hwm": "2026-11-01T01:00:00+00:00", "hwm_key": RESIDENT_ID, "recent": {"a": ["v", 1]}}


@pytest.fixture()
def mappings(tmp_path: Path, hub_db_url: str) -> Path:
    d = tmp_path / "mappings"
    d.mkdir()
    for name in ("commerce_enterprises", "land_property_rights"):
        shutil.copy(REPO / "mappings" / f"{name}.yaml", d / f"{name}.yaml")
    with session_scope(get_engine()) as s:
        save_state(s, "commerce", "enterprises", {"cursor": CURSOR, "last_reconcile": "2026-11-01T00:00:00+00:00"})
        record_staged(s, "commerce", "enterprises", "commerce_enterprises", "file:///x/batch-1.parquet", 40,
                      run_id="run-1")  # fmt: skip
        record_staged(s, "commerce", "enterprises", "commerce_enterprises", "file:///x/batch-2.parquet", 2,
                      run_id="run-1")  # fmt: skip
    return d


def _audit() -> list[dict[str, object]]:
    from recognition.tables import AuditEntry

    with session_scope(get_engine()) as s:
        return [
            {"consumer": e.consumer, "action": e.action, "resource": e.resource, "detail": e.detail}
            for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        ]


def _state() -> dict[str, object] | None:
    with session_scope(get_engine()) as s:
        row = s.get(SyncState, ("commerce", "enterprises"))
        return dict(row.state) if row is not None else None


def test_state_shows_positions_and_batches_not_yet_published(mappings: Path) -> None:
    out = runner.invoke(app, ["state", "commerce_enterprises", "--json", "--mappings", str(mappings)])
    assert out.exit_code == 0, out.output
    (row,) = [json.loads(line) for line in out.output.splitlines()]
    assert row["dataset"] == "enterprises" and row["position"]["watermark"] == CURSOR["hwm"]
    assert row["position"]["watermark_key"] != RESIDENT_ID  # a key may be a resident id: masked
    assert (row["pending_batches"], row["pending_rows"], row["staged_by"]) == (2, 42, ["run-1"])
    table = runner.invoke(app, ["state", "commerce_enterprises", "--mappings", str(mappings)], env={"COLUMNS": "300"})
    assert table.exit_code == 0 and "2 batch(es), 42 row(s) staged by run-1" in table.output
    assert "carries the batches not yet published through first" in table.output
    unknown = runner.invoke(app, ["state", "nope", "--mappings", str(mappings)])
    assert unknown.exit_code == 2 and "no mapping named" in unknown.output


def test_reset_asks_moves_and_writes_an_audit_entry(mappings: Path) -> None:
    from recognition.audit import verify

    args = ["reset", "commerce_enterprises", "enterprises", "--mappings", str(mappings)]
    declined = runner.invoke(app, [*args, "--since", "2026-10-30T08:00:00"], input="n\n")
    assert declined.exit_code == 1 and "nothing changed" in declined.output
    assert _state() is not None and _state()["cursor"] == CURSOR and _audit() == []  # type: ignore[index]

    moved = runner.invoke(app, [*args, "--since", "2026-10-30T08:00:00"], input="y\n")
    assert moved.exit_code == 0, moved.output
    state = _state()
    assert state is not None
    # a time without an offset is the source's local time (Asia/Shanghai, +08:00)
    assert state["cursor"] == {"hwm": "2026-10-30T00:00:00+00:00", "hwm_key": None, "recent": {}}
    assert state["last_reconcile"] == "2026-11-01T00:00:00+00:00"  # the rest of the state stays
    (entry,) = _audit()
    assert entry["consumer"] == f"operator:{getpass.getuser()}" and entry["action"] == "reset_position"
    assert entry["resource"] == "sync_state/commerce/enterprises"
    detail = entry["detail"]
    assert isinstance(detail, dict) and detail["before"]["watermark"] == CURSOR["hwm"]
    assert detail["after"]["watermark"] == "2026-10-30T00:00:00+00:00" and detail["abandoned_batches"] == 0
    assert RESIDENT_ID not in json.dumps(detail)  # no personal data in the log

    to_start = runner.invoke(app, [*args, "--to-start", "--abandon-pending", "--yes"])
    assert to_start.exit_code == 0, to_start.output
    assert _state() is None
    with session_scope(get_engine()) as s:
        assert set(s.scalars(select(StagedBatch.status))) == {"abandoned"}
    last = _audit()[-1]["detail"]
    assert isinstance(last, dict) and (last["abandoned_batches"], last["abandoned_rows"]) == (2, 42)
    assert last["after"] == {"position": "start"}
    assert verify(get_engine()).ok  # the chain holds both entries


def test_reset_refuses_what_it_cannot_do(mappings: Path) -> None:
    both = runner.invoke(app, ["reset", "commerce_enterprises", "enterprises", "--to-start", "--since",
                               dt.date.today().isoformat(), "--yes", "--mappings", str(mappings)])  # fmt: skip
    assert both.exit_code == 2 and "exactly one" in both.output
    xml = runner.invoke(app, ["reset", "land_property_rights", "property_rights", "--since", "2026-10-30",
                              "--yes", "--mappings", str(mappings)])  # fmt: skip
    assert xml.exit_code == 2 and "no time position" in xml.output
    assert _audit() == [] and _state() is not None
