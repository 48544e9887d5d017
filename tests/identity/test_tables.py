"""The master-index models match the identity migration branch, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import identity.tables as t
from hub.db import Base, make_engine, migrate
from hub.testing import TempDatabase

OURS = {
    m.__tablename__
    for m in (
        t.IdentityPerson,
        t.IdentityEnterprise,
        t.IdentityCrosswalk,
        t.IdentitySourceRecord,
        t.IdentityGoldenHistory,
        t.IdentityMerge,
    )
}


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    out = []
    for d in diffs:
        flat = d if isinstance(d, tuple) else d[0]
        if any(name in repr(flat) for name in OURS):
            out.append(flat)
    return out


def test_models_match_migration_on_sqlite(hub_db_url: str) -> None:
    assert _diff(hub_db_url) == []


@pytest.mark.postgres
def test_models_match_migration_on_postgres(pg_database: TempDatabase) -> None:
    url = pg_database.sqlalchemy_url
    migrate(url, "identity@head")
    assert _diff(url) == []
