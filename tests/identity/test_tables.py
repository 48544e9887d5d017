"""The master-index models match the identity migration branch, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

import identity.tables as t
from hub.db import migrate
from rigs.testing import TempDatabase, schema_drift

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
    return schema_drift(url, OURS)


def test_models_match_migration_on_sqlite(hub_db_url: str) -> None:
    assert _diff(hub_db_url) == []


@pytest.mark.postgres
def test_models_match_migration_on_postgres(pg_database: TempDatabase) -> None:
    url = pg_database.sqlalchemy_url
    migrate(url, "identity@head")
    assert _diff(url) == []
