"""The SQL connector (关系库接入): one connector over Airflow's DB-API hooks.

ODBC through pyodbc (``OdbcHook``: PostgreSQL, MariaDB/MySQL, SQLite, SQL Server via
FreeTDS) and Oracle through python-oracledb (``OracleHook``). Reads are incremental by a
watermark column with the key as tie-breaker and an optional look-back window
(:mod:`connectors.incremental`); naive timestamps are read in the source's timezone
(Asia/Shanghai by default). ``fetchmany`` batches keep memory constant; every value is a
bind parameter (:mod:`connectors.sql_dialect`). Deletes are found by key reconciliation
(:mod:`connectors.keys`) on every read, or every ``reconcile_every_seconds``, and emitted as
tombstones. Push is a bulk
insert or upsert (``fast_executemany`` where the driver has it).

One job, one module: the SQL connector's both directions over one connection; what it leans on
(dialects, the incremental window, key reconciliation, the bulk reader) are modules of their own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from connectors.base import (
    SOURCE_KEY,
    SOURCE_VERSION,
    Batch,
    CheckResult,
    State,
    WriteResult,
    arrow_type_to_json,
    tombstone_table,
    with_meta,
)
from connectors.config import ConnectionInfo, dataset_block, get_connection, retry_policy, source_schema
from connectors.errors import (
    BadRecord,
    ConnectorAuthError,
    ConnectorConfigError,
    ConnectorError,
    ConnectorTimeout,
    ConnectorUnavailable,
)
from connectors.incremental import WatermarkCursor
from connectors.keys import KeyLedger
from connectors.odbc_bulk import BULK_DIALECTS, DEFAULT_MAX_TEXT, BulkReader, is_bulk_error
from connectors.retry import call_with_retries
from connectors.sql_dialect import (
    TableRef,
    compile_sql,
    get_dialect,
    incremental_select,
    insert_statement,
    keys_select,
    missing_watermark_select,
    probe_select,
    upsert_sql,
)
from hub.masking import mask_record
from hub.odbcenv import ensure_odbc_env
from hub.settings import get_settings

_AUTH = re.compile(
    r"password authentication failed|role .* does not exist|access denied|login failed|ORA-01017|"
    r"authentication",
    re.IGNORECASE,
)
_UNAVAILABLE = re.compile(
    r"connection refused|can't connect|could not connect|could not translate host|server closed|"
    r"terminating connection|gone away|lost connection|broken pipe|no route|network|ORA-12\d{3}|"
    r"DPY-6\d{3}|connection reset|communication link|unable to connect",
    re.IGNORECASE,
)
_TIMEOUT = re.compile(r"timeout|timed out|HYT0|canceling statement", re.IGNORECASE)


def classify_db_error(exc: Exception, *, where: str) -> ConnectorError:
    """Map a driver error (pyodbc SQLSTATE / oracledb code + text) to a typed connector error."""
    state = str(exc.args[0]) if exc.args else ""
    text = " ".join(str(a) for a in exc.args) or str(exc)
    short = text.splitlines()[0][:300]
    if state in {"28000", "28P01"} or _AUTH.search(text):
        return ConnectorAuthError(f"the database refused the login: {short}", where=where)
    if state.startswith("HYT") or _TIMEOUT.search(text):
        return ConnectorTimeout(f"the database did not answer in time: {short}", where=where)
    if state.startswith("08") or state == "57P01" or _UNAVAILABLE.search(text):
        return ConnectorUnavailable(f"the database cannot be reached: {short}", where=where)
    return ConnectorError(
        f"the database rejected a statement: {short}",
        where=where,
        action="check table and column names in the source: block against the department's schema",
    )


def _is_db_error(exc: Exception) -> bool:
    mod = type(exc).__module__ or ""
    return mod.startswith(("pyodbc", "oracledb", "arrow_odbc")) or type(exc).__name__ in {
        "Error",
        "OperationalError",
        "InterfaceError",
        "DatabaseError",
        "ProgrammingError",
    }


#: extra ODBC connection-string options that make the driver stream instead of buffering
_STREAMING_OPTIONS = {
    "postgresql": "UseDeclareFetch=1;Fetch={batch};",
    "mysql": "NO_CACHE=1;",
    "mariadb": "NO_CACHE=1;",
}


def _odbc_hook(conn_id: str, driver: str | None) -> Any:
    """An ``OdbcHook`` whose driver comes from the source block (or the Connection's DSN).

    The stock hook logs a warning on every connection unless the driver sits in the
    Connection extra with ``allow_driver_in_extra``; the driver is not a secret, so the
    source block names it and this hook takes it without the noise.
    """
    from airflow.providers.odbc.hooks.odbc import OdbcHook  # noqa: PLC0415 - Airflow, ~2 s; only connecting needs it

    class SourceOdbcHook(OdbcHook):  # type: ignore[misc]
        @property
        def driver(self) -> str | None:
            value = self._driver or self.default_driver
            return value.strip().lstrip("{").rstrip("}").strip() if value else None

    return SourceOdbcHook(odbc_conn_id=conn_id, driver=driver)


class SqlConnector:
    """Reads and writes department tables through an Airflow DB-API hook."""

    protocol = "sql"
    directions = frozenset({"read", "write"})

    def __init__(self, name: str, block: Mapping[str, Any], *, ledger_root: Any = None) -> None:
        self.name = name
        self.block = dict(block)
        self.personal_columns: dict[str, str] = {}
        self.conn_id: str = self.block["conn_id"]
        self.driver: str = self.block.get("driver", "odbc")
        self.dialect_name: str = self.block.get("dialect") or self._dialect_from_connection()
        self.dialect = get_dialect(self.dialect_name, driver=self.driver)
        self.tz = ZoneInfo(self.block.get("timezone", "Asia/Shanghai"))
        self.batch_size = int(self.block.get("batch_size", 10_000))
        self.timeout = int(self.block.get("timeout_seconds", 30))
        self.retry = retry_policy(self.block)
        self._ledger_root = ledger_root
        self._columns: dict[str, tuple[str, ...]] = {}
        # bulk: column-wise block fetch into Arrow (connectors.odbc_bulk); rows: pyodbc fetchmany
        default_fetch = "bulk" if self.driver == "odbc" and self.dialect_name in BULK_DIALECTS else "rows"
        self.fetch: str = str(self.block.get("fetch", default_fetch))
        if self.fetch not in ("bulk", "rows"):
            raise ConnectorConfigError(f"fetch must be 'bulk' or 'rows', not {self.fetch!r}", where=self._where())
        if self.fetch == "bulk" and self.driver != "odbc":
            raise ConnectorConfigError("fetch: bulk needs driver: odbc", where=self._where())

    def _dialect_from_connection(self) -> str:
        """Which SQL a server speaks is a deployment fact: a Connection may say it in ``extra.dialect``."""
        try:
            return str(get_connection(self.conn_id).extra.get("dialect") or "postgresql")
        except ConnectorConfigError:
            return "postgresql"  # the Connection is missing: check() reports that properly

    # --- spec / connection -------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return dict(source_schema()["$defs"]["sql"])

    def _where(self, dataset: str | None = None) -> str:
        suffix = f" dataset={dataset}" if dataset else ""
        return f"source={self.name} conn_id={self.conn_id}{suffix}"

    def connection_info(self) -> ConnectionInfo:
        return get_connection(self.conn_id)

    def _connect_once(self) -> Any:
        try:
            if self.driver == "oracle":
                from airflow.providers.oracle.hooks.oracle import OracleHook  # noqa: PLC0415 - optional driver

                conn = OracleHook(oracle_conn_id=self.conn_id).get_conn()
                conn.call_timeout = self.timeout * 1000
                return conn
            if self.driver != "odbc":
                raise ConnectorConfigError(f"unknown SQL driver {self.driver!r}", where=self._where())
            ensure_odbc_env()
            import pyodbc  # noqa: PLC0415 - unixODBC reads ODBCSYSINI when pyodbc loads: after ensure_odbc_env

            hook = _odbc_hook(self.conn_id, self.block.get("odbc_driver"))
            conn_str = self._odbc_connection_string(hook)
            kwargs = dict(hook.connect_kwargs)
            kwargs.setdefault("timeout", self.timeout)
            conn = pyodbc.connect(conn_str, **kwargs)
            if self.dialect_name in ("mysql", "mariadb"):
                # MariaDB Connector/ODBC reports UTF-8 text lengths in characters, and pyodbc's
                # default UTF-16 decoding then drops trailing CJK characters (赵进嘉 → 赵进).
                # Reading and writing UTF-8 keeps every character.
                conn.setdecoding(pyodbc.SQL_CHAR, encoding="utf-8")
                conn.setdecoding(pyodbc.SQL_WCHAR, encoding="utf-8")
                conn.setencoding(encoding="utf-8")
            self._set_statement_timeout(conn)
            return conn
        except ConnectorError:
            raise
        except Exception as exc:
            if "AirflowNotFoundException" in type(exc).__name__:
                raise ConnectorConfigError(
                    f"Airflow Connection {self.conn_id!r} is not defined",
                    where=self._where(),
                    action=f"set AIRFLOW_CONN_{self.conn_id.upper()} or create it in the Airflow UI",
                ) from exc
            raise classify_db_error(exc, where=self._where()) from exc

    def _odbc_connection_string(self, hook: Any) -> str:
        """The Connection's ODBC string plus the options that make the driver stream, not buffer."""
        conn_str = str(hook.odbc_connection_string)
        if conn_str and not conn_str.endswith(";"):
            conn_str += ";"
        return conn_str + _STREAMING_OPTIONS.get(self.dialect_name, "").format(batch=self.batch_size)

    def _timeout_statements(self) -> list[str]:
        if self.dialect_name == "postgresql":
            return [f"SET statement_timeout = {int(self.timeout * 1000)}"]
        if self.dialect_name in ("mysql", "mariadb"):
            return [f"SET SESSION max_statement_time = {int(self.timeout)}"]
        return []

    def _bulk_reader(self) -> BulkReader:
        """arrow-odbc's connection to the same data source, with the same timeouts, retried like connect()."""

        def once() -> BulkReader:
            ensure_odbc_env()
            try:
                hook = _odbc_hook(self.conn_id, self.block.get("odbc_driver"))
                return BulkReader(
                    self._odbc_connection_string(hook), timeout_seconds=self.timeout,
                    session_statements=self._timeout_statements(),
                    max_text_size=int(self.block.get("max_text_size", DEFAULT_MAX_TEXT)),
                )  # fmt: skip
            except ConnectorError:
                raise
            except Exception as exc:
                if "AirflowNotFoundException" in type(exc).__name__:
                    raise ConnectorConfigError(
                        f"Airflow Connection {self.conn_id!r} is not defined", where=self._where(),
                        action=f"set AIRFLOW_CONN_{self.conn_id.upper()} or create it in the Airflow UI",
                    ) from exc  # fmt: skip
                raise classify_db_error(exc, where=self._where()) from exc

        return call_with_retries(once, self.retry, what=f"connect (bulk) {self._where()}")

    def _set_statement_timeout(self, conn: Any) -> None:
        """Bound every statement by ``timeout_seconds`` (drivers differ in how)."""
        statements = self._timeout_statements()
        if statements:
            for statement in statements:
                conn.cursor().execute(statement).close()
        else:
            # some drivers have no query timeout; the login timeout still applies
            with contextlib.suppress(Exception):
                conn.timeout = self.timeout

    def connect(self) -> Any:
        """A DB-API connection, retried with backoff while the database is unreachable."""
        return call_with_retries(self._connect_once, self.retry, what=f"connect {self._where()}")

    # --- datasets ----------------------------------------------------------------------
    def _dataset(self, dataset: str) -> Mapping[str, Any]:
        return dataset_block(self.block, dataset, where=self._where(dataset))

    def _ref(self, dataset: str, conn: Any | None = None) -> TableRef:
        ds = self._dataset(dataset)
        columns = tuple(ds.get("columns") or ())
        if not columns:
            columns = self._columns.get(dataset) or ()
        ref = TableRef(
            name=ds.get("table", dataset),
            schema=ds.get("schema"),
            key=ds["key"],
            watermark=ds["watermark"],
            columns=columns,
        )
        if not columns and conn is not None:
            columns = tuple(d[0] for d in self._describe(conn, ref, dataset))
            self._columns[dataset] = columns
            ref = TableRef(ref.name, ref.key, ref.watermark, columns, ref.schema)
        return ref

    def _execute(self, conn: Any, stmt: Any, dataset: str) -> Any:
        compiled = compile_sql(stmt, self.dialect)
        cur = conn.cursor()
        try:
            cur.execute(compiled.sql, compiled.params)
        except Exception as exc:
            if _is_db_error(exc):
                raise classify_db_error(exc, where=self._where(dataset)) from exc
            raise
        return cur

    def _describe(self, conn: Any, ref: TableRef, dataset: str) -> list[tuple[Any, ...]]:
        cur = self._execute(conn, probe_select(ref), dataset)
        desc = list(cur.description or [])
        cur.close()
        return desc

    def check(self) -> CheckResult:
        try:
            conn = self._connect_once()
            try:
                for dataset in self.block.get("datasets") or {}:
                    self._ref(dataset, conn)
            finally:
                conn.close()
        except ConnectorError as exc:
            return CheckResult(False, str(exc), type(exc).__name__)
        n = len(self.block.get("datasets") or {})
        return CheckResult(True, f"connected to {self.conn_id} and probed {n} dataset(s)")

    def discover(self) -> dict[str, dict[str, Any]]:
        conn = self.connect()
        try:
            out: dict[str, dict[str, Any]] = {}
            for dataset in self.block.get("datasets") or {}:
                ref = self._ref(dataset, conn)
                props = {}
                for d in self._describe(conn, ref, dataset):
                    props[d[0]] = _python_type_to_json(d[1])
                ds = self._dataset(dataset)
                out[dataset] = {
                    "type": "object",
                    "properties": props,
                    "x-source-key": ds["key"],
                    "x-watermark": ds["watermark"],
                }
            return out
        finally:
            conn.close()

    # --- read --------------------------------------------------------------------------
    def _ledger(self, dataset: str) -> KeyLedger:
        root = Path(self._ledger_root) if self._ledger_root else get_settings().home / "connectors"
        return KeyLedger(root / self.name / dataset / "keys")

    def read(self, dataset: str, state: State | None, *, limit: int | None = None) -> Iterator[Batch]:
        """Batches of rows changed since ``state``, then (when due) tombstones for deleted rows."""
        ds = self._dataset(dataset)
        state = dict(state or {})
        lookback = dt.timedelta(seconds=float(ds.get("lookback_seconds", 0)))
        cursor = WatermarkCursor.from_state(
            state.get("cursor"), lookback=lookback, max_recent=int(ds.get("max_recent", 100_000))
        )
        # every read lists the keys unless the dataset spaces reconciliations out: a deleted row
        # must reach the hub (pipeline.deletions) by the next run, not only where someone asked
        reconcile_every = float(ds.get("reconcile_every_seconds") or 0)
        ledger = self._ledger(dataset) if limit is None else None
        conn = self.connect()
        try:
            ref = self._ref(dataset, conn)
            bulk = self.fetch == "bulk"
            stmt = incremental_select(
                ref,
                lower=self._naive(cursor.lower_bound()),
                hwm=self._naive(cursor.hwm),
                hwm_key=cursor.hwm_key,
                lookback=lookback > dt.timedelta(0),
                # the bulk path binds every value as text, which MariaDB refuses in LIMIT ?: it stops
                # reading instead (the server cursor hands out only the blocks asked for)
                limit=None if bulk else limit,
            )
            # Batches are cut from the rows *kept* (not yet seen), so a resumed read — which
            # re-scans the look-back window and drops what it saw — yields the very same batches
            # (same rows, same checkpoints, same staged object names) as the read it resumes.
            pending: list[pa.Table] = []
            pending_rows = 0
            remaining = limit if bulk else None
            for table in self._fetch_tables(conn, stmt, dataset, bulk=bulk):
                if remaining is not None:
                    if remaining <= 0:
                        break
                    table = table.slice(0, remaining)
                    remaining -= table.num_rows
                naive, ts = self._timestamps(table[ref.watermark])
                keys = pc.cast(table[ref.key], pa.string())
                if isinstance(keys, pa.ChunkedArray):
                    keys = keys.combine_chunks()
                versions = source_versions(ts, naive)
                mask = cursor.keep_mask(keys, versions, ts)
                kept = with_meta(table, keys, versions).append_column(_TS, ts).filter(mask)
                if kept.num_rows:
                    pending.append(kept)
                    pending_rows += kept.num_rows
                while pending_rows >= self.batch_size:
                    combined = pa.concat_tables(pending)
                    rest = combined.slice(self.batch_size)
                    pending, pending_rows = ([rest] if rest.num_rows else []), rest.num_rows
                    yield self._emit(combined.slice(0, self.batch_size), ref, cursor, ledger, state)
            if pending_rows:
                yield self._emit(pa.concat_tables(pending), ref, cursor, ledger, state)
            if ledger is not None and self._reconcile_due(state, reconcile_every):
                yield from self._reconcile(conn, ref, dataset, ledger, {**state, "cursor": cursor.to_state()})
        finally:
            with contextlib.suppress(Exception):  # the connection may already be dead
                conn.close()

    def _fetch_tables(self, conn: Any, stmt: Any, dataset: str, *, bulk: bool) -> Iterator[pa.Table]:
        """The result set of ``stmt`` as Arrow tables of up to ``batch_size`` rows, in order."""
        if bulk:
            compiled = compile_sql(stmt, self.dialect)
            reader = self._bulk_reader()
            try:
                yield from reader.read(compiled.sql, list(compiled.params), self.batch_size)
            except Exception as exc:
                if is_bulk_error(exc):
                    raise classify_db_error(exc, where=self._where(dataset)) from exc
                raise
            finally:
                reader.close()
            return
        cur = self._execute(conn, stmt, dataset)
        names = [d[0] for d in cur.description]
        py_types = [d[1] for d in cur.description]
        while True:
            try:
                rows = cur.fetchmany(self.batch_size)
            except Exception as exc:
                if _is_db_error(exc):
                    raise classify_db_error(exc, where=self._where(dataset)) from exc
                raise
            if not rows:
                break
            yield _rows_to_table(rows, names, py_types)
        cur.close()

    def _emit(
        self, table: pa.Table, ref: TableRef, cursor: WatermarkCursor, ledger: KeyLedger | None, state: State
    ) -> Batch:
        """Advance the cursor past ``table`` (kept rows, in order) and wrap it as a batch."""
        keys = table[SOURCE_KEY].combine_chunks()
        versions = table[SOURCE_VERSION].combine_chunks()
        ts = table[_TS].combine_chunks()
        cursor.advance(keys, versions, ts, last_key=table[ref.key][table.num_rows - 1].as_py())
        if ledger is not None:
            ledger.add(keys)
        return Batch(table.drop_columns([_TS]), [], {**state, "cursor": cursor.to_state()})

    def _reconcile_due(self, state: Mapping[str, Any], every: float) -> bool:
        last = state.get("last_reconcile")
        if not last:
            return True
        return (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(last)).total_seconds() >= every

    def _reconcile(self, conn: Any, ref: TableRef, dataset: str, ledger: KeyLedger, state: State) -> Iterator[Batch]:
        """List every key; keys the hub knows but the source lost are tombstones.

        Rows whose watermark is NULL are reported as bad records: no incremental read reaches them.
        """
        started = dt.datetime.now(dt.UTC)
        cur = self._execute(conn, keys_select(ref), dataset)
        parts: list[pa.Array] = []
        while rows := cur.fetchmany(max(self.batch_size, 50_000)):
            parts.append(pa.array([str(r[0]) for r in rows], pa.string()))
        cur.close()
        current = pa.concat_arrays(parts) if parts else pa.array([], pa.string())
        gone = ledger.missing_from(current)
        bad: list[BadRecord] = []
        cur = self._execute(conn, missing_watermark_select(ref), dataset)
        names = [d[0] for d in cur.description]
        for row in cur.fetchall():
            record = dict(zip(names, row, strict=True))
            bad.append(
                BadRecord(
                    reason_code="missing_watermark",
                    reason=(
                        f"{ref.watermark} is NULL, so incremental reads never pick this row up; "
                        f"the department must set {ref.watermark} on every change"
                    ),
                    source_key=str(record.get(ref.key)),
                    source_version=None,
                    raw=_jsonable(mask_record(record, self.personal_columns)),
                    source_ref=f"{ref.schema + '.' if ref.schema else ''}{ref.name}",
                )
            )
        cur.close()
        version = f"deleted@{state.get('cursor', {}).get('hwm') or started.isoformat()}"
        yield Batch(tombstone_table(gone, version), bad, {**state, "last_reconcile": started.isoformat()})
        ledger.replace(current)

    def _naive(self, value: dt.datetime | None) -> dt.datetime | None:
        """Aware instant → naive local time in the source's timezone (how the column stores it)."""
        return None if value is None else value.astimezone(self.tz).replace(tzinfo=None)

    def _timestamps(self, column: pa.ChunkedArray | pa.Array) -> tuple[pa.Array | None, pa.Array]:
        """The watermark as (naive local times or ``None``, tz-aware instants)."""
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            arr = pc.cast(arr, pa.timestamp("us"))
        if not pa.types.is_timestamp(arr.type):
            raise ConnectorConfigError(f"watermark column has type {arr.type}, not a timestamp", where=self._where())
        if arr.type.tz is None:
            return arr, pc.assume_timezone(arr, str(self.tz), ambiguous="earliest", nonexistent="earliest")
        return None, arr

    # --- write -------------------------------------------------------------------------
    def write(self, dataset: str, records: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Bulk upsert (or insert, ``push.mode: insert``) of ``records`` into the dataset's table."""
        if not records:
            return WriteResult(0)
        ds = self._dataset(dataset)
        push = dict(ds.get("push") or {})
        columns = list(push.get("columns") or records[0].keys())
        ref = TableRef(ds.get("table", dataset), ds["key"], ds["watermark"], tuple(columns), ds.get("schema"))
        if push.get("mode", "upsert") == "insert":
            compiled = compile_sql(insert_statement(ref, columns), self.dialect)
        else:
            compiled = upsert_sql(ref, columns, self.dialect_name, self.dialect)
        names = compiled.bind_names
        if self.dialect.positional:
            params: list[Any] = [tuple(r.get(n) for n in names) for r in records]
        else:
            params = [{n: r.get(n) for n in names} for r in records]
        conn = self.connect()
        try:
            cur = conn.cursor()
            if hasattr(cur, "fast_executemany"):
                # parameter arrays are what SQL Server's drivers are built for; psqlodbc 13 hangs on
                # them here (Debian bookworm), so for the other drivers it is opt-in (push.fast_executemany)
                cur.fast_executemany = bool(push.get("fast_executemany", self.dialect_name == "mssql"))
            chunk = int(push.get("chunk_size", 5_000))
            try:
                for i in range(0, len(params), chunk):
                    cur.executemany(compiled.sql, params[i : i + chunk])
                conn.commit()
            except Exception as exc:
                conn.rollback()
                if _is_db_error(exc):
                    raise classify_db_error(exc, where=self._where(dataset)) from exc
                raise
        finally:
            conn.close()
        return WriteResult(len(records))


#: the tz-aware watermark travels with kept rows until their batch is cut, then is dropped
_TS = "__watermark_ts"

_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _utc_offset(units: int, unit: str) -> str:
    minutes = int(units) // _UNITS_PER_SECOND[unit] // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def source_versions(aware: pa.Array, naive: pa.Array | None = None) -> pa.Array:
    """Each row's source version: its watermark as local ISO time with its UTC offset.

    Exactly ``strftime(aware, "%Y-%m-%dT%H:%M:%S%z")`` (fractional seconds as the column's
    unit has them); when the naive local times are at hand the text is built from them and
    the per-row offset instead, ten times faster than Arrow's time-zone-aware strftime, which
    otherwise dominates a pull. Offsets differ within a batch only around a zone's rule
    changes (Shanghai kept summer time 1986–1991), so they are formatted once per distinct value.
    """
    if naive is None:
        return pc.strftime(aware, format="%Y-%m-%dT%H:%M:%S%z")
    local = pc.replace_substring(pc.cast(naive, pa.string()), " ", "T", max_replacements=1)
    offsets = pc.subtract(naive.cast(pa.int64()), aware.cast(pa.int64()))
    distinct = pc.unique(offsets.drop_null()).to_pylist()
    unit = naive.type.unit
    if len(distinct) <= 1:
        suffix: Any = pa.scalar(_utc_offset(distinct[0], unit) if distinct else "+0000")
    else:
        text = {v: _utc_offset(v, unit) for v in distinct}
        suffix = pa.array([None if v is None else text[v] for v in offsets.to_pylist()], pa.string())
    return pc.binary_join_element_wise(local, suffix, "")


_ARROW_TYPES: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    dt.datetime: pa.timestamp("us"),
    dt.date: pa.date32(),
}


def _rows_to_table(
    rows: Sequence[Sequence[Any]], names: Sequence[str], py_types: Sequence[Any] | None = None
) -> pa.Table:
    """Row tuples → Arrow columns; the cursor's declared types spare Arrow its type inference."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = []
    for i, col in enumerate(columns):
        declared = _ARROW_TYPES.get(py_types[i]) if py_types else None
        try:
            arrays.append(pa.array(col, declared) if declared is not None else pa.array(col))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([None if v is None else str(v) for v in col], pa.string()))
    return pa.Table.from_arrays(arrays, names=list(names))


def _python_type_to_json(py_type: Any) -> dict[str, Any]:
    if py_type is bool:
        return {"type": ["boolean", "null"]}
    if py_type is int:
        return {"type": ["integer", "null"]}
    if py_type in (float, decimal.Decimal):
        return {"type": ["number", "null"]}
    if py_type is dt.datetime:
        return {"type": ["string", "null"], "format": "date-time"}
    if py_type is dt.date:
        return {"type": ["string", "null"], "format": "date"}
    if isinstance(py_type, pa.DataType):
        return arrow_type_to_json(py_type)
    return {"type": ["string", "null"]}


def _jsonable(record: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in record.items():
        out[k] = v if v is None or isinstance(v, (str, int, float, bool)) else str(v)
    return out
