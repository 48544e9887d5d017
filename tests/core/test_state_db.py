"""The shared state database: migrations, the transactional outbox and quarantine."""

from __future__ import annotations

import pytest
from sqlalchemy import func, inspect, select

from hub.db import make_engine, session_scope
from hub.models import OutboxEvent, QuarantineRecord, SyncState
from hub.outbox import emit, events_after


def _check_outbox_transactional(url: str) -> None:
    engine = make_engine(url)
    # An event written with a change that rolls back must vanish with it.
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        s.add(SyncState(source="tax", dataset="taxpayers", state={"since": "2026-01-01"}))
        emit(s, "license.issued", "L1", {"x": 1}, "k1", holder_code="H1")
        raise RuntimeError("crash before commit")
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == 0
        assert s.get(SyncState, ("tax", "taxpayers")) is None
    with session_scope(engine) as s:
        s.add(SyncState(source="tax", dataset="taxpayers", state={"since": "2026-01-01"}))
        first = emit(s, "license.issued", "L1", {"x": 1}, "k1", holder_code="H1")
        again = emit(s, "license.issued", "L1", {"x": 1}, "k1", holder_code="H1")
        assert first.id == again.id
        emit(s, "license.revoked", "L1", {"x": 2}, "k2", holder_code="H1")
    with session_scope(engine) as s:
        events = events_after(s, 0)
        assert [e.idempotency_key for e in events] == ["k1", "k2"]
        assert [e.event_type for e in events_after(s, events[0].id)] == ["license.revoked"]
        s.add(QuarantineRecord(source="tax", dataset="taxpayers", reason_code="soap_fault", reason="x"))
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(QuarantineRecord)) == 1
    engine.dispose()


def test_migrations_create_shared_tables(hub_db_url: str) -> None:
    tables = set(inspect(make_engine(hub_db_url)).get_table_names())
    assert {"sync_state", "quarantine", "outbox_event", "alembic_version"} <= tables


def test_outbox_is_transactional_sqlite(hub_db_url: str) -> None:
    _check_outbox_transactional(hub_db_url)


@pytest.mark.postgres
def test_outbox_is_transactional_postgres(pg_hub_db_url: str) -> None:
    _check_outbox_transactional(pg_hub_db_url)


def test_migrate_twice_is_a_no_op(hub_db_url: str) -> None:
    from hub.db import migrate

    migrate(hub_db_url)
    assert "outbox_event" in inspect(make_engine(hub_db_url)).get_table_names()


LINEAGE = {"lineage_mapping", "lineage_batch", "lineage_record"}


def test_lineage_models_match_their_migration_on_sqlite(hub_db_url: str) -> None:
    from rigs.testing import schema_drift

    assert set(inspect(make_engine(hub_db_url)).get_table_names()) >= LINEAGE
    assert schema_drift(hub_db_url, LINEAGE) == []
    with make_engine(hub_db_url).connect() as conn:  # one B-tree per record: no rowid
        ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'lineage_record'").scalar()
    assert "WITHOUT ROWID" in str(ddl).upper()


@pytest.mark.postgres
def test_lineage_models_match_their_migration_on_postgres(pg_hub_db_url: str) -> None:
    from rigs.testing import schema_drift

    assert schema_drift(pg_hub_db_url, LINEAGE) == []
