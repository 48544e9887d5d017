"""Helpers for tests and benchmarks: throwaway databases on the shared servers.

PostgreSQL and MariaDB on this machine are shared by every session and CI run, so each
test creates a uniquely named database and drops it afterwards. A missing server skips
the test on a laptop but *fails* it when ``CI=true``.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.odbcenv import ensure_odbc_env

if TYPE_CHECKING:
    from rigs.scaled import ScaledConfig

# Database drivers, Redis, Alembic and the ORM are imported inside the helpers that use them (`noqa:
# PLC0415 - conftest`): tests/conftest.py imports this module for every test run.

PG_HOST = os.environ.get("HUB_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("HUB_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("HUB_TEST_PG_USER", "postgres")
MARIADB_HOST = os.environ.get("HUB_TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("HUB_TEST_MARIADB_PORT", "3306"))
MARIADB_USER = os.environ.get("HUB_TEST_MARIADB_USER", "root")
REDIS_URL = os.environ.get("HUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


class ServiceMissing(RuntimeError):
    pass


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class TempDatabase:
    kind: str  # "postgresql" | "mariadb"
    name: str
    host: str
    port: int
    user: str

    @property
    def sqlalchemy_url(self) -> str:
        if self.kind == "postgresql":
            return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{self.name}"
        return f"mysql+pymysql://{self.user}@{self.host}:{self.port}/{self.name}?charset=utf8mb4"

    @property
    def odbc_connection_string(self) -> str:
        if self.kind == "postgresql":
            return (
                f"DRIVER={{PostgreSQL Unicode}};SERVER={self.host};PORT={self.port};"
                f"DATABASE={self.name};UID={self.user};PWD=;"
            )
        return (
            f"DRIVER={{MariaDB Unicode}};SERVER={self.host};PORT={self.port};"
            f"DATABASE={self.name};UID={self.user};PWD=;CHARSET=utf8mb4;"
        )


@contextmanager
def temp_postgres_database(prefix: str = "hubtest") -> Iterator[TempDatabase]:
    import psycopg  # noqa: PLC0415 - ~0.3 s; tests/conftest.py imports this module for every test run

    name = unique_name(prefix)
    try:
        admin = psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True, connect_timeout=5
        )
    except Exception as exc:
        raise ServiceMissing(f"PostgreSQL not reachable on {PG_HOST}:{PG_PORT}: {exc}") from exc
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield TempDatabase("postgresql", name, PG_HOST, PG_PORT, PG_USER)
    finally:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def temp_mariadb_database(prefix: str = "hubtest") -> Iterator[TempDatabase]:
    import pymysql  # noqa: PLC0415 - ~0.15 s; tests/conftest.py imports this module for every test run

    name = unique_name(prefix)
    try:
        admin = pymysql.connect(
            host=MARIADB_HOST,
            port=MARIADB_PORT,
            user=MARIADB_USER,
            password="",
            connect_timeout=5,
            autocommit=True,
        )
    except Exception as exc:
        raise ServiceMissing(f"MariaDB not reachable on {MARIADB_HOST}:{MARIADB_PORT}: {exc}") from exc
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        yield TempDatabase("mariadb", name, MARIADB_HOST, MARIADB_PORT, MARIADB_USER)
    finally:
        try:
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            admin.close()


def odbc_available(driver: str) -> bool:
    ensure_odbc_env()
    try:
        import pyodbc  # noqa: PLC0415 - optional driver; unixODBC reads ODBCSYSINI when it loads
    except ImportError:
        return False
    return driver in pyodbc.drivers()


@contextmanager
def temp_redis_prefix(prefix: str = "hubtest") -> Iterator[tuple[str, str]]:
    """The shared Redis's URL and a key prefix of this test's own; its keys are deleted afterwards."""
    import redis  # noqa: PLC0415 - ~0.3 s; tests/conftest.py imports this module for every test run

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise ServiceMissing(f"Redis not reachable at {REDIS_URL}: {exc}") from exc
    key_prefix = unique_name(prefix) + ":"
    try:
        yield REDIS_URL, key_prefix
    finally:
        for key in client.scan_iter(match=key_prefix + "*"):
            client.delete(key)
        client.close()


@contextmanager
def temp_redis_database(prefix: str = "hubtest") -> Iterator[tuple[str, str]]:
    """A Redis database number of the shared server's (an empty one, if any) and a key prefix of this test's own.

    Yields (URL naming that database, key prefix); the prefix's keys are deleted afterwards. The prefix keeps
    two tests apart even when both picked the same database.
    """
    import redis  # noqa: PLC0415 - ~0.3 s; tests/conftest.py imports this module for every test run

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        databases = int(client.config_get("databases").get("databases") or 16)
    except redis.RedisError as exc:
        client.close()
        raise ServiceMissing(f"Redis not reachable at {REDIS_URL}: {exc}") from exc
    client.close()
    base = REDIS_URL.rsplit("/", 1)[0] if REDIS_URL.count("/") > 2 else REDIS_URL.rstrip("/")
    sizes = {}
    for number in range(1, databases):
        with redis.Redis.from_url(f"{base}/{number}", socket_connect_timeout=2, socket_timeout=5) as db:
            sizes[number] = int(db.dbsize())
    empty = [n for n, size in sizes.items() if size == 0]
    number = random.choice(empty) if empty else min(sizes, key=lambda n: sizes[n])
    url = f"{base}/{number}"
    key_prefix = unique_name(prefix) + ":"
    try:
        yield url, key_prefix
    finally:
        with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5) as db:
            for key in db.scan_iter(match=key_prefix + "*"):
                db.delete(key)


@contextmanager
def temp_scaled_config(prefix: str = "hubscaled") -> Iterator[ScaledConfig]:
    """A :class:`rigs.scaled.ScaledConfig` on throwaway servers' parts: Airflow's metadata database and the
    hub's on PostgreSQL, a Redis database and key prefix of its own; the databases dropped and the keys
    deleted afterwards."""
    from rigs.scaled import own_config  # noqa: PLC0415 - psycopg, redis, the store; conftest

    with (
        temp_postgres_database(f"{prefix}_airflow") as airflow_db,
        temp_postgres_database(f"{prefix}_hub") as hub_db,
        temp_redis_database(prefix) as (broker_url, key_prefix),
    ):
        yield own_config(airflow_db.sqlalchemy_url, hub_db.sqlalchemy_url, broker_url, key_prefix)


def schema_drift(url: str, tables: set[str] | frozenset[str]) -> list[object]:
    """What the models declare for ``tables`` that the migrated database at ``url`` lacks, or the reverse.

    Each alembic diff entry is attributed to the table it is about, by name: a column in another
    table that happens to be called like one of ``tables`` (``case_material.license_version``)
    does not make that table ours.
    """
    from alembic.autogenerate import compare_metadata  # noqa: PLC0415 - Alembic; conftest
    from alembic.migration import MigrationContext  # noqa: PLC0415 - as above

    from hub.db import Base, make_engine  # noqa: PLC0415 - ORM ~0.5 s; conftest

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()
    flat: list[tuple[Any, ...]] = []
    for entry in diffs:
        flat.extend(entry if isinstance(entry, list) else [entry])
    return [d for d in flat if _table_of(d) in tables]


def _table_of(diff: tuple[Any, ...]) -> str | None:
    subject: Any = diff[1] if len(diff) > 1 else None
    if hasattr(subject, "columns") and not hasattr(subject, "table"):
        return str(subject.name)  # add_table / remove_table: a Table
    if getattr(subject, "table", None) is not None:
        return str(subject.table.name)  # add_index / add_constraint ...: an Index or Constraint
    if len(diff) > 2 and isinstance(diff[2], str):
        return diff[2]  # add_column / modify_type ...: (op, schema, table name, ...)
    return None
