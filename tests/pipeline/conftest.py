"""Fixtures for the pipeline: a small city, department sandboxes, Airflow's own database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rigs.testing import TempDatabase

SMALL = {"persons": 200, "enterprises": 50, "properties": 60}


@pytest.fixture(scope="session")
def small_city() -> Any:
    from sandbox.generator import Sizes, generate

    return generate(7, Sizes(**SMALL))


def commerce_connection(db: TempDatabase) -> dict[str, Any]:
    """The commerce registry as an Airflow Connection (JSON form): DSN from etc/odbc, dialect in extra."""
    return {
        "conn_type": "odbc",
        "host": db.host,
        "port": db.port,
        "schema": db.name,
        "login": db.user,
        "extra": {"dsn": "hub_commerce_mariadb", "CHARSET": "utf8mb4", "dialect": "mariadb"},
    }


@pytest.fixture()
def commerce_registry(mariadb_database: TempDatabase, small_city: Any, odbc_mariadb: None) -> Iterator[Any]:
    from sandbox.commerce.registry import CommerceRegistry

    registry = CommerceRegistry(mariadb_database.odbc_connection_string, "mariadb")
    registry.load(small_city.enterprise_registry)
    registry.connection = commerce_connection(mariadb_database)
    yield registry


@pytest.fixture()
def airflow_db_url() -> Iterator[str]:
    """Airflow's metadata database on PostgreSQL (as in CI and compose), dropped afterwards."""
    from rigs.testing import ServiceMissing, temp_postgres_database
    from tests.conftest import require

    try:
        cm = temp_postgres_database("hubairflow")
        db = cm.__enter__()
    except ServiceMissing as exc:
        require(False, str(exc))
        raise
    try:
        yield db.sqlalchemy_url
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture()
def celery_broker() -> Iterator[tuple[str, str]]:
    """(Redis URL naming a database number of its own, a key prefix of its own) on the shared Redis."""
    from rigs.testing import ServiceMissing, temp_redis_database
    from tests.conftest import require

    try:
        cm = temp_redis_database("hubcelery")
        found = cm.__enter__()
    except ServiceMissing as exc:
        require(False, str(exc))
        raise
    try:
        yield found
    finally:
        cm.__exit__(None, None, None)


def conn_env(conn_id: str, conn: dict[str, Any]) -> dict[str, str]:
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}


def hub_env(home: Path, hub_db_url: str) -> dict[str, str]:
    """What the Airflow task processes need to reach the same hub as the test."""
    return {"HUB_HOME": str(home), "HUB_DB_URL": hub_db_url, "HUB_DAG_SCHEDULES": "off", "HUB_LOG_LEVEL": "INFO"}
