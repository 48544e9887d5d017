"""Fixtures for the identity tests: a session on a freshly migrated hub database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from hub.db import make_engine, session_factory


@pytest.fixture()
def session(hub_db_url: str) -> Iterator[Session]:
    engine = make_engine(hub_db_url)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()


@pytest.fixture()
def pg_session(pg_hub_db_url: str) -> Iterator[Session]:
    engine = make_engine(pg_hub_db_url)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()
