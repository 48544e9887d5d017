"""The hub's clock (时钟): now in UTC and today where the hub serves.

Light on purpose: identifier checks (a birth date not in the future) read "today" here, and
importing an identifier module must not load the settings, the database or the ORM. The
timezone is ``HUB_SOURCE_TIMEZONE`` (the departments' zone, Asia/Shanghai by default), read at
each call as :class:`hub.settings.Settings` reads it.

The clock is injectable (:func:`clock_at`): a simulation, or a test replaying a back-dated
history, runs the hub on its own time, and every "now" the hub takes (a step's recording time, a
clock's today, a future-time check) follows it.

>>> utcnow().tzinfo is dt.UTC
True
>>> with clock_at(lambda: dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC)):
...     utcnow().isoformat(), local_today().isoformat()
('2026-03-02T01:30:00+00:00', '2026-03-02')
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from zoneinfo import ZoneInfo

#: The zone when ``HUB_SOURCE_TIMEZONE`` is not set (the default of ``Settings.source_timezone``).
DEFAULT_TIMEZONE = "Asia/Shanghai"


#: the injected clock (:func:`clock_at`), or None for the system's
_injected: list[Callable[[], dt.datetime]] = []


def utcnow() -> dt.datetime:
    """Now in UTC: the injected clock's time if one is in force, else the system's."""
    if _injected:
        return _injected[-1]().astimezone(dt.UTC)
    return dt.datetime.now(dt.UTC)


@contextmanager
def clock_at(now: Callable[[], dt.datetime]) -> Iterator[None]:
    """Run the hub on ``now`` (an aware time each call) until the block ends; blocks nest."""
    _injected.append(now)
    try:
        yield
    finally:
        _injected.pop()


_NAME = "HUB_SOURCE_TIMEZONE"
_NAME_B = _NAME.encode()


def source_timezone() -> str:
    """``HUB_SOURCE_TIMEZONE`` (any case, as pydantic-settings reads it) or the default.

    The name as written is looked up first; only when it is not set are the other names compared,
    as bytes (decoding every name of the environment on each call cost more than the day it serves).
    """
    value = os.environ.get(_NAME)
    if value:
        return value
    names: Iterable[Any] = os.environb if os.supports_bytes_environ else os.environ
    for name in names:
        if len(name) == len(_NAME) and name.upper() in (_NAME, _NAME_B):
            found = os.environ.get(name.decode() if isinstance(name, bytes) else name)
            if found:
                return found
    return DEFAULT_TIMEZONE


def local_today() -> dt.date:
    """Today where the hub serves: the date in its departments' timezone
    (``HUB_SOURCE_TIMEZONE``, Asia/Shanghai), the day licences are issued on, valid on and
    expire on — not the host's date, which on a UTC host is still yesterday until 08:00 there."""
    return utcnow().astimezone(ZoneInfo(source_timezone())).date()


def local_day(at: dt.datetime) -> dt.date:
    """The day ``at`` falls on where the hub serves (``HUB_SOURCE_TIMEZONE``); a naive time is UTC,
    as SQLite hands it back."""
    aware = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    return aware.astimezone(ZoneInfo(source_timezone())).date()
