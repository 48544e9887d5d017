"""The quarantine_reason model matches the validation migration branch, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import validation.tables  # noqa: F401  (registers the model on Base)
from hub.db import Base, make_engine


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    flat = [d if isinstance(d, tuple) else d[0] for d in diffs]
    return [d for d in flat if "quarantine_reason" in repr(d)]


def test_model_matches_migration(db_url: str) -> None:
    assert _diff(db_url) == []
