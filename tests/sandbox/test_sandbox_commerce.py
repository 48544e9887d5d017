"""The commerce sandbox answers through ODBC: SQLite3 driver embedded, MariaDB driver on the server."""

from __future__ import annotations

import pytest

from hub.odbcenv import ensure_odbc_env
from sandbox.commerce.registry import mariadb_unicode
from sandbox.runtime import Sandboxes


def odbc_rows(sb: Sandboxes, sql: str, *params: object) -> list[tuple]:
    ensure_odbc_env()
    import pyodbc

    conn = pyodbc.connect(sb.commerce.odbc_connection_string, timeout=10)
    if sb.commerce.dialect == "mariadb":
        mariadb_unicode(conn)
    try:
        return [tuple(r) for r in conn.cursor().execute(sql, *params).fetchall()]
    finally:
        conn.close()


def check_registry(sb: Sandboxes) -> None:
    expected = sb.population.enterprise_registry
    assert odbc_rows(sb, "SELECT COUNT(*) FROM enterprise_registry") == [(len(expected),)]
    rows = odbc_rows(
        sb, "SELECT ent_id, uscc, ent_name, legal_rep_name, reg_no FROM enterprise_registry ORDER BY ent_id"
    )
    by_id = expected.set_index("ent_id")
    for ent_id, uscc, name, rep, _reg_no in rows:
        src = by_id.loc[ent_id]
        assert name == src["ent_name"]  # Chinese text arrives whole through the driver
        assert rep == (src["legal_rep_name"] if isinstance(src["legal_rep_name"], str) else None)
        assert uscc == (src["uscc"] if isinstance(src["uscc"], str) else None)
    assert any(u is None and r is not None for _, u, _, _, r in rows), "old records without a USCC"


def test_embedded_commerce_over_sqlite_odbc(sandbox_embedded: Sandboxes) -> None:
    assert sandbox_embedded.commerce.odbc_connection_string.startswith("DRIVER={SQLite3}")
    check_registry(sandbox_embedded)


@pytest.mark.mariadb
@pytest.mark.postgres
@pytest.mark.odbc
def test_servers_commerce_over_mariadb_odbc(sandbox_servers: Sandboxes) -> None:
    assert "MariaDB Unicode" in sandbox_servers.commerce.odbc_connection_string
    check_registry(sandbox_servers)


@pytest.mark.mariadb
@pytest.mark.odbc
def test_registry_from_odbc_string_alone(mariadb_database, odbc_mariadb) -> None:
    from sandbox.commerce.registry import CommerceRegistry
    from sandbox.generator import Sizes, generate

    frame = generate(4, Sizes(100, 30, 10)).enterprise_registry
    registry = CommerceRegistry(mariadb_database.odbc_connection_string, "mariadb")
    assert registry.load(frame) == len(frame)
    assert registry.count() == len(frame)
    assert registry.fetch("ent_id = ?", int(frame["ent_id"].iloc[0]))[0]["ent_name"] == frame["ent_name"].iloc[0]


def test_identifier_doctests() -> None:
    import doctest

    import sandbox.codes
    import sandbox.commerce.registry

    for module in (sandbox.codes, sandbox.commerce.registry):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
