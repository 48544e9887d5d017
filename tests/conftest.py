"""Shared fixtures. Areas add their own in ``tests/<area>/conftest.py``."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.odbcenv import ensure_odbc_env
from rigs.testing import ServiceMissing, TempDatabase, in_ci, odbc_available

pytest_plugins = ["rigs.fixtures"]

ensure_odbc_env()
# Great Expectations logs every registered function at import; keep test output readable.
logging.getLogger("great_expectations").setLevel(logging.WARNING)


def require(condition: bool, why: str) -> None:
    """Skip when a service is missing on a laptop; fail under CI=true (no silent skips in CI)."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"required service missing in CI: {why}")
    pytest.skip(why)


@pytest.fixture()
def hub_db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, migrated SQLite hub database, set as HUB_DB_URL for the test."""
    from hub.db import get_engine, migrate
    from hub.settings import reset_settings

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    monkeypatch.setenv("HUB_DB_URL", url)
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    reset_settings()
    get_engine.cache_clear()
    migrate(url)
    yield url
    get_engine.cache_clear()
    reset_settings()


@pytest.fixture()
def pg_database() -> Iterator[TempDatabase]:
    from rigs.testing import temp_postgres_database

    try:
        cm = temp_postgres_database()
        db = cm.__enter__()
    except ServiceMissing as exc:
        require(False, str(exc))
        raise
    try:
        yield db
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture()
def mariadb_database() -> Iterator[TempDatabase]:
    from rigs.testing import temp_mariadb_database

    try:
        cm = temp_mariadb_database()
        db = cm.__enter__()
    except ServiceMissing as exc:
        require(False, str(exc))
        raise
    try:
        yield db
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture()
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(Redis URL, a key prefix of the test's own) on the Redis at 127.0.0.1:6379."""
    from rigs.testing import temp_redis_prefix

    try:
        cm = temp_redis_prefix()
        found = cm.__enter__()
    except ServiceMissing as exc:
        require(False, str(exc))
        raise
    try:
        yield found
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture()
def pg_hub_db_url(pg_database: TempDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated hub database on PostgreSQL (what CI and compose use), set as HUB_DB_URL, with the test's
    own HUB_HOME as on SQLite (files a run left in the checkout's var/, a matching model say, decide nothing)."""
    from hub.db import get_engine, migrate
    from hub.settings import reset_settings

    url = pg_database.sqlalchemy_url
    monkeypatch.setenv("HUB_DB_URL", url)
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    reset_settings()
    get_engine.cache_clear()
    migrate(url)
    yield url
    get_engine.cache_clear()
    reset_settings()


@pytest.fixture()
def odbc_postgres() -> None:
    require(odbc_available("PostgreSQL Unicode"), "ODBC driver 'PostgreSQL Unicode' (odbc-postgresql) missing")


@pytest.fixture()
def odbc_mariadb() -> None:
    require(odbc_available("MariaDB Unicode"), "ODBC driver 'MariaDB Unicode' (odbc-mariadb) missing")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("HUB_LOG_LEVEL", "WARNING")
