"""The population registry answers through SQL: SQLite embedded, PostgreSQL (schema population) on the server."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from hub.odbcenv import ensure_odbc_env
from sandbox.public_security.registry import person_table
from sandbox.runtime import Sandboxes


def check_registry(sb: Sandboxes) -> None:
    expected = sb.population.person_registry
    engine = sa.create_engine(sb.public_security.sqlalchemy_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            n = conn.execute(sa.text(f"SELECT COUNT(*) FROM {sb.public_security.table}")).scalar()
            schema = "population" if sb.public_security.dialect == "postgresql" else None
            t = person_table(schema)
            cols = (t.c.person_no, t.c.resident_id, t.c.name, t.c.updated_at)
            first = conn.execute(sa.select(*cols).order_by(t.c.person_no).limit(3)).all()
    finally:
        engine.dispose()
    assert n == len(expected)
    src = expected.set_index("person_no")
    for person_no, resident_id, name, updated_at in first:
        assert resident_id == src.loc[person_no, "resident_id"]
        assert name == src.loc[person_no, "name"]
        assert isinstance(updated_at, dt.datetime) and updated_at.tzinfo is None  # naive local time
        assert updated_at == src.loc[person_no, "updated_at"].to_pydatetime()


def test_embedded_population_registry(sandbox_embedded: Sandboxes) -> None:
    assert sandbox_embedded.public_security.dialect == "sqlite"
    check_registry(sandbox_embedded)


def test_embedded_population_registry_over_odbc(sandbox_embedded: Sandboxes) -> None:
    ensure_odbc_env()
    import pyodbc

    conn = pyodbc.connect(sandbox_embedded.public_security.odbc_connection_string)
    try:
        (n,) = conn.cursor().execute("SELECT COUNT(*) FROM person_registry").fetchone()
    finally:
        conn.close()
    assert n == len(sandbox_embedded.population.person_registry)


@pytest.mark.postgres
@pytest.mark.mariadb
def test_servers_population_registry_on_postgres(sandbox_servers: Sandboxes) -> None:
    assert sandbox_servers.public_security.dialect == "postgresql"
    assert sandbox_servers.public_security.table == "population.person_registry"
    check_registry(sandbox_servers)
    engine = sa.create_engine(sandbox_servers.public_security.sqlalchemy_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        dtype = conn.execute(
            sa.text(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = 'population' "
                "AND table_name = 'person_registry' AND column_name = 'updated_at'"
            )
        ).scalar()
    engine.dispose()
    assert dtype == "timestamp without time zone"


def test_oracle_ddl_matches_the_columns() -> None:
    from pathlib import Path

    from sandbox.public_security.registry import COLUMNS

    ddl = (Path(__file__).parents[2] / "sandbox" / "public_security" / "oracle.sql").read_text()
    assert "CREATE TABLE population.person_registry" in ddl
    for column in COLUMNS:
        assert f"\n    {column} " in ddl, column
