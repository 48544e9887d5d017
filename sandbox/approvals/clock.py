"""The sandboxes' simulated clock (模拟时钟): the time every approval system lives in.

Kept in a small JSON file beside the sandbox's data, so a server process (the tax bureau's SOAP
service) reads the same time as the test that advances it. Time moves only when someone sets or
advances it: every timeline the approval systems produce is deterministic.

>>> import tempfile, pathlib
>>> c = SimClock(pathlib.Path(tempfile.mkdtemp()) / "clock.json", start=dt.datetime(2026, 9, 1, 1, tzinfo=dt.UTC))
>>> c.advance(dt.timedelta(hours=2)).isoformat()
'2026-09-01T03:00:00+00:00'
>>> SimClock(c.path).now() == c.now()
True
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path


class SimClock:
    """Simulated time (aware, UTC) kept in ``path``."""

    def __init__(self, path: Path, *, start: dt.datetime | None = None) -> None:
        self.path = Path(path)
        if start is not None or not self.path.exists():
            self.set(start or dt.datetime.now(dt.UTC))

    def now(self) -> dt.datetime:
        return dt.datetime.fromisoformat(json.loads(self.path.read_text(encoding="utf-8"))["now"])

    def set(self, at: dt.datetime) -> dt.datetime:
        if at.tzinfo is None:
            raise ValueError("the simulated clock takes aware times")
        at = at.astimezone(dt.UTC)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"now": at.isoformat()}), encoding="utf-8")
        os.replace(tmp, self.path)
        return at

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        if delta < dt.timedelta(0):
            raise ValueError("the simulated clock does not run backwards")
        return self.set(self.now() + delta)
