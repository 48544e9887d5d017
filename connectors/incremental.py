"""Incremental reading by watermark + key tie-breaker with a look-back window (增量同步水位).

The cursor remembers the high-water mark (the last ``(timestamp, key)`` staged) and, for a
look-back window, which ``(key, version)`` pairs it has already emitted with timestamps
inside ``[hwm - lookback, hwm]``. A read re-scans from ``hwm - lookback`` and drops those
pairs, so a row that commits *late* with an earlier timestamp (a long transaction, a clock
in local time) is still picked up, and nothing is emitted twice.

The remembered set is capped (``max_recent``): past the cap the oldest pairs are forgotten
and may be re-emitted — never lost — since downstream dedupes on ``(key, version)``.

>>> import pyarrow as pa, datetime as dt
>>> tz = dt.timezone.utc
>>> c = WatermarkCursor.from_state(None, lookback=dt.timedelta(seconds=60))
>>> ts = pa.array([dt.datetime(2024, 1, 1, 0, 0, s, tzinfo=tz) for s in (1, 2)], pa.timestamp("us", tz="UTC"))
>>> keys, versions = pa.array(["a", "b"]), pa.array(["v1", "v1"])
>>> c.keep_mask(keys, versions, ts).to_pylist()
[True, True]
>>> c.advance(keys, versions, ts, last_key="b")
>>> c.keep_mask(pa.array(["a", "c"]), pa.array(["v1", "v1"]), ts).to_pylist()
[False, True]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _to_us(value: dt.datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass
class WatermarkCursor:
    """High-water mark, its key (tie-breaker) and the pairs already seen inside the look-back."""

    lookback: dt.timedelta
    hwm: dt.datetime | None = None
    hwm_key: Any = None
    recent: dict[str, tuple[str, int]] = field(default_factory=dict)
    max_recent: int = 100_000

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any] | None, *, lookback: dt.timedelta, max_recent: int = 100_000
    ) -> WatermarkCursor:
        state = state or {}
        hwm = dt.datetime.fromisoformat(state["hwm"]) if state.get("hwm") else None
        recent = {str(k): (str(v[0]), int(v[1])) for k, v in (state.get("recent") or {}).items()}
        return cls(lookback=lookback, hwm=hwm, hwm_key=state.get("hwm_key"), recent=recent, max_recent=max_recent)

    def to_state(self) -> dict[str, Any]:
        return {
            "hwm": self.hwm.isoformat() if self.hwm else None,
            "hwm_key": self.hwm_key,
            "recent": {k: [v[0], v[1]] for k, v in self.recent.items()},
        }

    def lower_bound(self) -> dt.datetime | None:
        """Where the next scan starts: ``hwm - lookback`` (None: from the beginning)."""
        return None if self.hwm is None else self.hwm - self.lookback

    def keep_mask(self, keys: pa.Array, versions: pa.Array, ts: pa.Array) -> pa.BooleanArray:
        """True for rows not yet emitted: after the mark, or inside the window with a new version."""
        n = len(keys)
        if self.hwm is None or n == 0 or not self.recent:
            return pa.array([True] * n, pa.bool_())
        hwm = pa.scalar(self.hwm.astimezone(dt.UTC), pa.timestamp("us", tz="UTC")).cast(ts.type)
        maybe_seen = pc.fill_null(pc.less_equal(ts, hwm), False)
        if not pc.any(maybe_seen).as_py():
            return pa.array([True] * n, pa.bool_())
        mask = [True] * n
        seen_idx = pc.indices_nonzero(maybe_seen).to_pylist()
        k_list = pc.take(keys, seen_idx).to_pylist()
        v_list = pc.take(versions, seen_idx).to_pylist()
        for i, k, v in zip(seen_idx, k_list, v_list, strict=True):
            prior = self.recent.get(k)
            if prior is not None and prior[0] == v:
                mask[i] = False
        return pa.array(mask, pa.bool_())

    def advance(self, keys: pa.Array, versions: pa.Array, ts: pa.Array, *, last_key: Any) -> None:
        """Move the mark past a staged batch (rows in (timestamp, key) order)."""
        if len(keys) == 0:
            return
        batch_max = pc.max(ts).as_py()
        if batch_max is None:
            return
        if self.hwm is None or batch_max >= self.hwm:
            last_ts = ts[len(ts) - 1].as_py()
            self.hwm_key = last_key if last_ts == batch_max else self.hwm_key
            self.hwm = batch_max
        if self.lookback <= dt.timedelta(0):
            self.recent.clear()
            return
        cutoff = self.hwm - self.lookback
        cutoff_s = pa.scalar(cutoff.astimezone(dt.UTC), pa.timestamp("us", tz="UTC")).cast(ts.type)
        inside = pc.fill_null(pc.greater_equal(ts, cutoff_s), False)
        idx = pc.indices_nonzero(inside)
        if len(idx):
            us = pc.take(ts, idx).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
            for k, v, t in zip(pc.take(keys, idx).to_pylist(), pc.take(versions, idx).to_pylist(), us, strict=True):
                self.recent[k] = (v, t)
        cutoff_us = _to_us(cutoff.astimezone(dt.UTC))
        self.recent = {k: v for k, v in self.recent.items() if v[1] >= cutoff_us}
        if len(self.recent) > self.max_recent:
            newest = sorted(self.recent.items(), key=lambda kv: kv[1][1])[-self.max_recent :]
            self.recent = dict(newest)
