"""The hub's clock (时钟): now in UTC and today where the hub serves.

Light on purpose: identifier checks (a birth date not in the future) read "today" here, and
importing an identifier module must not load the settings, the database or the ORM. The
timezone is ``HUB_SOURCE_TIMEZONE`` (the departments' zone, Asia/Shanghai by default), read at
each call as :class:`hub.settings.Settings` reads it.

>>> utcnow().tzinfo is dt.UTC
True
"""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

#: The zone when ``HUB_SOURCE_TIMEZONE`` is not set (the default of ``Settings.source_timezone``).
DEFAULT_TIMEZONE = "Asia/Shanghai"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def source_timezone() -> str:
    """``HUB_SOURCE_TIMEZONE`` (any case, as pydantic-settings reads it) or the default."""
    for name, value in os.environ.items():
        if name.upper() == "HUB_SOURCE_TIMEZONE" and value:
            return value
    return DEFAULT_TIMEZONE


def local_today() -> dt.date:
    """Today where the hub serves: the date in its departments' timezone
    (``HUB_SOURCE_TIMEZONE``, Asia/Shanghai), the day licences are issued on, valid on and
    expire on — not the host's date, which on a UTC host is still yesterday until 08:00 there."""
    return dt.datetime.now(ZoneInfo(source_timezone())).date()


def local_day(at: dt.datetime) -> dt.date:
    """The day ``at`` falls on where the hub serves (``HUB_SOURCE_TIMEZONE``); a naive time is UTC,
    as SQLite hands it back."""
    aware = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    return aware.astimezone(ZoneInfo(source_timezone())).date()
