"""Staging (暂存区): batches land durably as Parquet before any state moves.

A :class:`Stager` writes one batch under a name derived from the batch's position
(source, dataset, checkpoint before and after), so staging the same batch twice writes
the same object — safe to repeat after a crash. The local-filesystem stager lives under
``$HUB_HOME/staging/``; an object-store stager implements the same two methods.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from hub.settings import get_settings


def batch_object_name(source: str, dataset: str, before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> str:
    """Deterministic object name: the same batch from the same state gets the same name.

    >>> batch_object_name("commerce", "enterprise_registry", None, {"cursor": {"hwm": "x"}})[:35]
    'commerce/enterprise_registry/batch-'
    """
    digest = hashlib.sha256(
        json.dumps([source, dataset, before or {}, after], sort_keys=True, default=str).encode()
    ).hexdigest()
    return f"{source}/{dataset}/batch-{digest[:32]}.parquet"


class Stager(Protocol):
    """Where batches are staged; the pipeline's object-store stager implements the same."""

    def stage(self, name: str, table: pa.Table) -> str:
        """Write ``table`` durably as ``name``; return a reference downstream can open."""
        ...

    def list(self, source: str, dataset: str) -> list[str]:
        """References of every staged object for a source dataset."""
        ...


class LocalStager:
    """Parquet files under a directory (default ``$HUB_HOME/staging``), written atomically."""

    def __init__(self, root: Path | None = None) -> None:
        if root is None:
            root = get_settings().home / "staging"
        self.root = Path(root)

    def stage(self, name: str, table: pa.Table) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic: a reader sees the whole batch or none of it
        return str(path)

    def list(self, source: str, dataset: str) -> list[str]:
        folder = self.root / source / dataset
        return sorted(str(p) for p in folder.glob("batch-*.parquet")) if folder.exists() else []

    def read_all(self, source: str, dataset: str) -> Iterator[pa.Table]:
        for ref in self.list(source, dataset):
            yield pq.read_table(ref)
