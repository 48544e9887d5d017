"""The connector protocol (连接器协议), Airbyte-style: spec, check, discover, read, write.

A connector owns its protocol in both directions: ``read`` brings a department's data in,
``write`` pushes to it (the delivery worker's webhooks and SOAP notices go through ``write``).

A connector reads a department dataset as :class:`Batch` es — columnar (Arrow), thousands
of rows each — every row carrying ``_source_key`` and ``_source_version`` (downstream
dedupes on that pair) and ``_deleted`` (a tombstone for a row the source no longer has).
Each batch carries the ``checkpoint``: the state to resume from once the batch is staged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.compute as pc

from connectors.errors import BadRecord

SOURCE_KEY = "_source_key"
SOURCE_VERSION = "_source_version"
DELETED = "_deleted"
META_COLUMNS = (SOURCE_KEY, SOURCE_VERSION, DELETED)

State = dict[str, Any]


@dataclass
class CheckResult:
    """Outcome of :meth:`Connector.check`: can the hub reach and read the department?"""

    ok: bool
    message: str
    error: str | None = None  # the typed error's class name when not ok


@dataclass
class WriteResult:
    """Outcome of a push (:meth:`Connector.write`)."""

    written: int
    rejected: list[BadRecord] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Batch:
    """A staged unit: rows (Arrow), refused records, and the state after this batch."""

    table: pa.Table
    bad_records: list[BadRecord]
    checkpoint: State

    @property
    def rows_read(self) -> int:
        """Source records this batch accounts for: staged rows + refused records."""
        return self.table.num_rows + len(self.bad_records)

    @property
    def tombstones(self) -> int:
        if DELETED not in self.table.column_names or self.table.num_rows == 0:
            return 0
        return int(pc.sum(self.table[DELETED]).as_py() or 0)


@runtime_checkable
class Connector(Protocol):
    """What every connector implements; a department is configuration, not a class."""

    name: str
    #: what it does: ``read`` (a department's datasets into the hub), ``write`` (push to it), or both;
    #: a verb it does not do raises :class:`~connectors.errors.ConnectorConfigError`
    directions: frozenset[str]
    #: source field → personal-data kind (:class:`hub.masking.Personal`): how raw rows it
    #: reports are masked (set from the mapping by ``make_connector``; others are scrubbed)
    personal_columns: dict[str, str]

    def spec(self) -> dict[str, Any]:
        """JSON Schema of the options this connector's ``source:`` block accepts."""
        ...

    def check(self) -> CheckResult:
        """Connect, authenticate and touch every dataset; never raises for a source problem."""
        ...

    def discover(self) -> dict[str, dict[str, Any]]:
        """Dataset name → JSON Schema of its records (source field names)."""
        ...

    def read(self, dataset: str, state: State | None) -> Iterator[Batch]:
        """Yield batches changed since ``state``; each batch's checkpoint resumes after it."""
        ...

    def write(self, dataset: str, records: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Push records to the department (bulk); idempotent where the target allows."""
        ...


def tombstone_table(keys: Sequence[str], version: str) -> pa.Table:
    """Rows saying 'this key is gone from the source' (source columns absent)."""
    n = len(keys)
    return pa.table(
        {
            SOURCE_KEY: pa.array(list(keys), pa.string()),
            SOURCE_VERSION: pa.array([version] * n, pa.string()),
            DELETED: pa.array([True] * n, pa.bool_()),
        }
    )


def with_meta(table: pa.Table, keys: pa.Array, versions: pa.Array) -> pa.Table:
    """Append the meta columns (key, version, not deleted) to a table of source columns."""
    n = table.num_rows
    table = table.append_column(SOURCE_KEY, keys.cast(pa.string()))
    table = table.append_column(SOURCE_VERSION, versions.cast(pa.string()))
    return table.append_column(DELETED, pa.array([False] * n, pa.bool_()) if n else pa.array([], pa.bool_()))


def arrow_type_to_json(t: pa.DataType) -> dict[str, Any]:
    """JSON Schema type for an Arrow type (what discover reports)."""
    if pa.types.is_integer(t):
        return {"type": ["integer", "null"]}
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return {"type": ["number", "null"]}
    if pa.types.is_boolean(t):
        return {"type": ["boolean", "null"]}
    if pa.types.is_timestamp(t):
        return {"type": ["string", "null"], "format": "date-time"}
    if pa.types.is_date(t):
        return {"type": ["string", "null"], "format": "date"}
    return {"type": ["string", "null"]}
