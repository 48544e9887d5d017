"""The hub's "today" is the date where it serves (its departments' timezone), not the host's."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from hub.clock import DEFAULT_TIMEZONE, source_timezone
from hub.models import local_today
from hub.settings import reset_settings
from identifiers import _common


@pytest.fixture()
def zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.delenv("HUB_SOURCE_TIMEZONE", raising=False)
    reset_settings()


def _today_in(zone: pytest.MonkeyPatch, name: str) -> dt.date:
    zone.setenv("HUB_SOURCE_TIMEZONE", name)
    reset_settings()
    return local_today()


def test_today_follows_the_configured_timezone(zone: pytest.MonkeyPatch) -> None:
    # 26 hours apart: at any instant UTC+14 is one or two calendar days ahead of UTC-12
    ahead, behind = _today_in(zone, "Etc/GMT-14"), _today_in(zone, "Etc/GMT+12")
    assert 1 <= (ahead - behind).days <= 2
    # identifier checks (a birth date not in the future) use the same clock
    assert _common.today() == behind


def test_the_default_is_the_city_s_date(zone: pytest.MonkeyPatch) -> None:
    zone.delenv("HUB_SOURCE_TIMEZONE", raising=False)
    reset_settings()
    shanghai = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()  # China has no daylight saving
    assert local_today() == shanghai


def test_the_timezone_is_read_under_its_name_in_any_case(zone: pytest.MonkeyPatch) -> None:
    zone.delenv("HUB_SOURCE_TIMEZONE", raising=False)
    zone.setenv("hub_Source_timezone", "Etc/GMT-14")  # as pydantic-settings reads it: case-insensitive
    assert source_timezone() == "Etc/GMT-14"
    zone.setenv("HUB_SOURCE_TIMEZONE", "")  # empty under the name as written: the other spelling counts
    assert source_timezone() == "Etc/GMT-14"
    zone.setenv("HUB_SOURCE_TIMEZONE", "Etc/GMT+12")
    assert source_timezone() == "Etc/GMT+12"
    zone.delenv("hub_Source_timezone")
    zone.delenv("HUB_SOURCE_TIMEZONE")
    assert source_timezone() == DEFAULT_TIMEZONE
