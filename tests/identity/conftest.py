"""Fixtures for the identity tests: a session on a freshly migrated hub database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from hub.db import make_engine, session_factory
from hub.settings import reset_settings


@pytest.fixture()
def session(hub_db_url: str) -> Iterator[Session]:
    engine = make_engine(hub_db_url)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()


@pytest.fixture()
def pg_session(pg_hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    # the test's own home, as on SQLite: a matching model file left in the checkout's var/ (by the
    # demo, say) must not decide what this test's records match
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    reset_settings()
    engine = make_engine(pg_hub_db_url)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()
