"""The hub's state database: one SQLAlchemy 2 metadata for every part, migrated by Alembic.

Each part (identity, licences, recognition, ...) declares its tables on :class:`Base`
in its own ``tables.py`` module and ships its own Alembic branch under
``hub/migrations/versions``; ``hub migrate`` applies every branch (``upgrade heads``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from hub import sqlite_wal
from hub.settings import get_settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the API read while a DAG task writes; foreign keys are off by default in SQLite.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # temporary tables (set-based writes stage their rows there) and sorts in memory, not in a temporary file
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    url = url or get_settings().resolved_db_url()
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "checkin", sqlite_wal.on_checkin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


@lru_cache(maxsize=8)
def get_engine(url: str | None = None) -> Engine:
    return make_engine(url)


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A unit of work: commits on success, rolls back on error."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str | None = None) -> Any:
    """Alembic's configuration for the hub's migrations on the database at ``url``."""
    from alembic.config import Config  # noqa: PLC0415 - Alembic loads only for migrations

    url = url or get_settings().resolved_db_url()
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["engine_url"] = url
    return cfg


def migrate(url: str | None = None, revision: str = "heads") -> None:
    """Apply every Alembic branch to the database at ``url`` (default: ``HUB_DB_URL``)."""
    from alembic import command  # noqa: PLC0415 - Alembic loads only for migrations

    cfg = alembic_config(url)
    if (url or get_settings().resolved_db_url()).startswith("sqlite"):
        make_engine(url).dispose()  # creates the parent folder
    command.upgrade(cfg, revision)
