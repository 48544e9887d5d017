"""The licence tables: migration equals models (SQLite and PostgreSQL), and the service on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from e_license_store.index import licenses_by_holder, reindex
from e_license_store.service import LicenseService
from e_license_store.signing import KeyRing
from e_license_store.store.local import LocalStore
from e_license_store.tables import LicenseFileEntry, LicenseIndexEntry, LicenseVersionEntry
from hub.db import make_engine, migrate, session_factory
from rigs.testing import TempDatabase, schema_drift
from tests.e_license_store.conftest import USCC, business_draft, source

OURS = {t.__tablename__ for t in (LicenseIndexEntry, LicenseVersionEntry, LicenseFileEntry)}


def _diff(url: str) -> list[object]:
    return schema_drift(url, OURS)


def test_models_match_migration_on_sqlite(hub_db_url: str) -> None:
    assert _diff(hub_db_url) == []


@pytest.mark.postgres
def test_models_match_migration_and_service_runs_on_postgres(
    pg_database: TempDatabase, tmp_path: Path, keyring: KeyRing
) -> None:
    # only this branch (and core, which it depends on): another branch's problem must not mask ours
    url = pg_database.sqlalchemy_url
    migrate(url, "licenses@head")
    assert _diff(url) == []
    engine = make_engine(url)
    try:
        sessions = session_factory(engine)
        store = LocalStore(tmp_path / "store")
        service = LicenseService(store, sessions, keyring)
        lid = service.issue(business_draft(), source()).license_id
        assert not service.issue(business_draft(), source()).created
        service.revoke(lid, "closed")
        with sessions() as s:
            assert [r.status for r in licenses_by_holder(s, USCC)] == ["revoked"]
            assert reindex(s, store, keyring=service.signer) == 2
            s.commit()
            assert [r.version for r in licenses_by_holder(s, USCC)] == [2]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_batch_issue_and_outbox_on_postgres(pg_database: TempDatabase, tmp_path: Path, keyring: KeyRing) -> None:
    from sqlalchemy import func, select

    from hub.models import OutboxEvent

    url = pg_database.sqlalchemy_url
    migrate(url, "licenses@head")
    engine = make_engine(url)
    try:
        sessions = session_factory(engine)
        service = LicenseService(LocalStore(tmp_path / "store"), sessions, keyring)
        items = [(business_draft(license_number=f"33032200000{i:04d}"), source(f"b{i}")) for i in range(8)]
        first = service.issue_batch(items, concurrency=3)
        again = service.issue_batch(items, concurrency=3)
        assert all(r.created for r in first) and not any(r.created for r in again)
        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(OutboxEvent)) == 8
            assert len(licenses_by_holder(s, USCC)) == 8
    finally:
        engine.dispose()
