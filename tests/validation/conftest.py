"""Fixtures for the validation tests: hub databases on SQLite and PostgreSQL, a private HUB_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import Session

from hub.db import get_engine, session_factory
from hub.settings import reset_settings


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("HUB_HOME", str(home))
    reset_settings()
    yield home
    reset_settings()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The hub database on SQLite and on PostgreSQL (what CI and compose use)."""
    fixture = "hub_db_url" if request.param == "sqlite" else "pg_hub_db_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture()
def session(db_url: str) -> Iterator[Session]:
    s = session_factory(get_engine(db_url))()
    try:
        yield s
    finally:
        s.rollback()
        s.close()
        get_engine(db_url).dispose()


VALID_RID = "11010519491231002X"
VALID_RID_2 = "110105194912310021"  # wrong check digit: 002X is right
VALID_USCC = "91110000600037341L"


def person_frame() -> pd.DataFrame:
    """Four residents: one clean, one bad check digit (and no birth date: nothing to match it on), one
    missing id+name+bad region, one bad sex code."""
    return pd.DataFrame(
        {
            "resident_id": [VALID_RID, VALID_RID_2, None, VALID_RID],
            "name": ["张三", "李四", None, "王五"],
            "sex": ["1", "2", "1", "3"],
            "birth_date": ["1949-12-31", None, "1949-12-31", "1949-12-31"],
            "region_code": ["110105", "110105", "1101", "110105"],
            "status": ["alive", "alive", "deceased", "moved"],
            "address": ["浙江省温州市洞头区北岙街道中心路12号"] * 4,
            "phone": ["13812345678"] * 4,
            "_source_key": ["p1", "p2", "p3", "p4"],
            "_source_version": ["2026-01-01T00:00:00"] * 4,
        },
        index=[10, 11, 12, 13],
    )
