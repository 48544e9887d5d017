"""The recognition tables as declared match the Alembic branch ``recognition`` (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import recognition.tables  # noqa: F401 - registers the tables on Base
from hub.db import Base, make_engine


def _diff(url: str) -> list[Any]:
    engine = make_engine(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()

    def ours(item: Any) -> bool:
        text = repr(item)
        return "recognition_" in text

    flat = []
    for entry in diff:
        flat.extend(entry if isinstance(entry, list) else [entry])
    return [d for d in flat if ours(d)]


def test_models_match_migration_sqlite(hub_db_url: str) -> None:
    assert _diff(hub_db_url) == []


@pytest.mark.postgres
def test_models_match_migration_postgres(pg_hub_db_url: str) -> None:
    assert _diff(pg_hub_db_url) == []
