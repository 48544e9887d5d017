"""Airflow Connections for the department sandboxes (部门连接): conn_id → Connection (JSON form).

The mapping files name the Connections (``source.conn_id``); here the sandboxes' handles are
turned into them, to be passed as ``AIRFLOW_CONN_<ID>`` variables by ``hub up``, the demo, the
tests and the benchmark. ODBC drivers are named through DSNs in ``etc/odbc/odbc.ini``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import make_url

#: ODBC driver → DSN in etc/odbc/odbc.ini that names it
DRIVER_DSN = {
    "MariaDB Unicode": "hub_commerce_mariadb",
    "PostgreSQL Unicode": "hub_population_pg",
    "SQLite3": "hub_sqlite3",
}
_CORE_KEYS = {"DRIVER", "SERVER", "SERVERNAME", "PORT", "DATABASE", "UID", "PWD"}


def parse_odbc(conn_str: str) -> dict[str, str]:
    """``KEY=value;`` pairs (keys upper-cased, braces around values dropped).

    >>> parse_odbc("DRIVER={SQLite3};Database=/tmp/x.db;")
    {'DRIVER': 'SQLite3', 'DATABASE': '/tmp/x.db'}
    """
    out: dict[str, str] = {}
    for part in conn_str.split(";"):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key.strip().upper()] = value.strip().strip("{}")
    return out


def odbc_connection(conn_str: str, dialect: str) -> dict[str, Any]:
    """An Airflow ``odbc`` Connection equivalent to an ODBC connection string."""
    parts = parse_odbc(conn_str)
    extra: dict[str, Any] = {"dsn": DRIVER_DSN[parts["DRIVER"]], "dialect": dialect}
    extra.update({k: v for k, v in parts.items() if k not in _CORE_KEYS})
    conn: dict[str, Any] = {"conn_type": "odbc", "extra": extra}
    host = parts.get("SERVER") or parts.get("SERVERNAME")
    if host:
        conn["host"] = host
    if parts.get("PORT"):
        conn["port"] = int(parts["PORT"])
    if parts.get("DATABASE"):
        conn["schema"] = parts["DATABASE"]
    if parts.get("UID"):
        conn["login"] = parts["UID"]
    if parts.get("PWD"):
        conn["password"] = parts["PWD"]
    return conn


def sandbox_connections(sb: Any) -> dict[str, dict[str, Any]]:
    """The departments' Connections for running sandboxes (``sandbox.runtime.Sandboxes``)."""
    return {
        "commerce_registry": odbc_connection(sb.commerce.odbc_connection_string, sb.commerce.dialect),
        "population_registry": odbc_connection(sb.public_security.odbc_connection_string, sb.public_security.dialect),
        "tax_soap": {
            "conn_type": "http",
            "host": "127.0.0.1",
            "port": sb.tax.port,
            "login": sb.tax.username,
            "password": sb.tax.password,
            "extra": {"wsdl_path": "/tax?wsdl"},
        },
        "land_exchange": {"conn_type": "fs", "extra": {"path": str(sb.land.outbox_dir)}},
        **(
            {
                "social_insurance_db": odbc_connection(
                    sb.social_insurance.odbc_connection_string, sb.social_insurance.dialect
                )
            }
            if getattr(sb, "social_insurance", None) is not None
            else {}
        ),
        **(
            {
                "development_reform_approvals": odbc_connection(
                    sb.development_reform.odbc_connection_string, sb.development_reform.dialect
                )
            }
            if getattr(sb, "development_reform", None) is not None
            else {}
        ),
    }


def _dialect_of_driver(driver: str) -> str:
    return {"SQLite3": "sqlite", "MariaDB Unicode": "mariadb", "PostgreSQL Unicode": "postgresql"}.get(driver, "mssql")


def _odbc_of_url(url: str) -> tuple[str, str]:
    """(ODBC connection string, dialect) for a SQLAlchemy URL of a sandbox database."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return f"DRIVER={{SQLite3}};Database={u.database};", "sqlite"
    if u.get_backend_name() == "postgresql":
        conn = f"DRIVER={{PostgreSQL Unicode}};SERVER={u.host};PORT={u.port or 5432};DATABASE={u.database};"
        conn += f"UID={u.username};" if u.username else ""
        conn += f"PWD={u.password};" if u.password else ""
        return conn, "postgresql"
    raise ValueError(f"no ODBC mapping for {u.get_backend_name()}")


def state_connections(state: Mapping[str, Any], tax_password: str) -> dict[str, dict[str, Any]]:
    """The Connections for sandboxes recorded by ``hub sandbox up`` (its state.json)."""
    commerce = state["commerce"]["odbc_connection_string"]
    population, population_dialect = _odbc_of_url(state["public_security"]["sqlalchemy_url"])
    return {
        "commerce_registry": odbc_connection(commerce, _dialect_of_driver(parse_odbc(commerce)["DRIVER"])),
        "population_registry": odbc_connection(population, population_dialect),
        "tax_soap": {
            "conn_type": "http",
            "host": "127.0.0.1",
            "port": int(state["tax"]["port"]),
            "login": state["tax"].get("username", "hub"),
            "password": tax_password,
            "extra": {"wsdl_path": "/tax?wsdl"},
        },
        "land_exchange": {"conn_type": "fs", "extra": {"path": str(state["land"]["outbox_dir"])}},
        **(
            {"social_insurance_db": odbc_connection(*_odbc_of_url(state["social_insurance"]["sqlalchemy_url"]))}
            if state.get("social_insurance")
            else {}
        ),
        **(
            {
                "development_reform_approvals": odbc_connection(
                    *_odbc_of_url(state["development_reform"]["sqlalchemy_url"])
                )
            }
            if state.get("development_reform")
            else {}
        ),
    }
