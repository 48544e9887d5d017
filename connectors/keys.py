"""The key ledger (主键台账): which source keys the hub has been given, for delete detection.

A source that deletes rows leaves no trace a watermark can see. Periodically the SQL
connector lists every key the source still holds and compares it with the ledger:
keys in the ledger but gone from the source become tombstones. The ledger is a base
snapshot (Parquet) plus small delta segments appended as batches are emitted, kept
under ``$HUB_HOME/connectors/<source>/<dataset>/keys``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


class KeyLedger:
    """Base snapshot + delta segments of the keys emitted for one source dataset."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def base(self) -> Path:
        return self.root / "base.parquet"

    def _write(self, path: Path, keys: pa.Array) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        pq.write_table(pa.table({"key": keys.cast(pa.string())}), tmp)
        os.replace(tmp, path)

    def add(self, keys: pa.Array) -> None:
        """Record keys just emitted (before the batch is staged: a crash leaves extra keys, never fewer)."""
        if len(keys):
            self._write(self.root / f"delta-{uuid.uuid4().hex}.parquet", keys)

    def known(self) -> pa.Array:
        parts: list[pa.Array] = []
        if self.base.exists():
            parts.append(pq.read_table(self.base)["key"].combine_chunks())
        for seg in sorted(self.root.glob("delta-*.parquet")) if self.root.exists() else []:
            parts.append(pq.read_table(seg)["key"].combine_chunks())
        if not parts:
            return pa.array([], pa.string())
        return pc.unique(pa.concat_arrays([p.cast(pa.string()) for p in parts]))

    def missing_from(self, current: pa.Array) -> list[str]:
        """Keys the hub knows that the source no longer holds."""
        known = self.known()
        if not len(known):
            return []
        gone = pc.invert(pc.is_in(known, value_set=current.cast(pa.string())))
        return sorted(pc.filter(known, gone).to_pylist())

    def replace(self, current: pa.Array) -> None:
        """After a reconciliation is staged: the source's key set becomes the new base."""
        deltas = list(self.root.glob("delta-*.parquet")) if self.root.exists() else []
        self._write(self.base, current)
        for seg in deltas:
            seg.unlink(missing_ok=True)
