"""Department steps in bulk (环节数据批量汇聚): what a department's approval system reports, pulled in
batches, written to the step log set-based.

:func:`cases.service.record_step` takes one step the way the API receives it. A department's feed
brings thousands at a time, so :func:`ingest_step_columns` (a batch as columns; :func:`ingest_steps`
takes a list of :class:`ReportedStep`) does the same work per batch, not per row: one query per
thousand codes resolves the cases, one reads their dispatches and the steps already logged, every
row is checked against them in memory, and the new steps and their ``case.step`` events go in as
multi-row INSERTs in the caller's transaction, built column by column as the driver takes them
(docs/decisions/0031-step-ingestion-column-by-column.md). The rules are record_step's:

* a step of a case the department was not dispatched, of an unknown case or department, or that
  a department may not report, is refused (counted by code) and the rest go on;
* a resend (same case, department and ``seq``, same content) changes nothing; the same number
  with other content is refused (``step_conflict``); corrections are new steps;
* a step that happened before one of its department already logged (or earlier in the batch)
  is flagged ``arrived_out_of_order``; where it belongs on the timeline is worked out on reading.

A correction request comes in a batch with its list of what is missing (``detail``'s
``missing``: every item with a name, as the API's ``MissingIn`` asks); without one it is refused
with ``detail_required``. Steps that carry more structure — a suspension's period, an extension's
days and approver — come through the API (``StepIn`` checks them) and are refused here likewise.

Then :func:`settle` brings each touched case up to date the way record_step does after its step:
its status, its clocks, and the release of the stages its steps unblock.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Table, select
from sqlalchemy.orm import Session

from cases import dispatch
from cases import service as svc
from cases import steps as st
from cases.catalogue import Catalogue, load_catalogue
from cases.tables import CaseRecord, CaseStep
from hub import sqlite_wal
from hub.bulk import Columns, insert_tuples, sqlite_cache
from hub.models import OutboxEvent, utcnow
from identifiers import supervision_code

#: codes resolved per query (SQLite limits bound parameters)
CHUNK = 1000
#: steps whose structure only the API's checks take
#: the step log's columns a batch writes per step (the recording time and actor are the batch's)
STEP_COLUMNS = (
    "case_id", "department", "seq", "step", "occurred_at", "note", "detail", "fingerprint", "arrived_out_of_order",
)  # fmt: skip
#: steps from which a batch's commit leaves SQLite's WAL checkpoint to a worker thread (hub.sqlite_wal)
DEFER_CHECKPOINT_ROWS = 50_000
#: SQLite's page cache while a batch is written (KiB): the log's and the outbox's indexes in memory
WRITE_CACHE_KIB = 262_144
NEEDS_DETAIL = frozenset({st.Step.CORRECTION_REQUESTED, st.Step.SUSPENDED, st.Step.EXTENDED})


@dataclass(frozen=True)
class ReportedStep:
    """One step as a department's system reports it."""

    code: str
    department: str
    seq: int
    step: str
    occurred_at: dt.datetime
    note: str | None = None
    #: correction_requested: ``{"missing": [{"code", "name"}, ...]}``
    detail: Mapping[str, Any] | None = None


def missing_list(detail: Mapping[str, Any] | None) -> list[dict[str, str]] | None:
    """A correction request's list of what is missing, if ``detail`` states one (each item named).

    >>> missing_list({"missing": [{"code": "M05", "name": "授权委托书"}]})
    [{'code': 'M05', 'name': '授权委托书'}]
    >>> missing_list({"missing": []}), missing_list({"missing": [{"code": "M05"}]}), missing_list(None)
    (None, None, None)
    """
    items = (detail or {}).get("missing")
    if not isinstance(items, list) or not items or len(items) > 50:
        return None
    out: list[dict[str, str]] = []
    for m in items:
        if not isinstance(m, Mapping) or not str(m.get("name") or "").strip():
            return None
        out.append({k: str(v) for k, v in m.items() if k in ("code", "name", "reason") and v})
    return out


@dataclass
class Ingested:
    """What a batch did: steps appended, resends that changed nothing, refusals by code, cases touched."""

    appended: int = 0
    resent: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    case_ids: set[int] = field(default_factory=set)


def _digest_text(step: str, iso: str, note: str | None) -> str:
    shown = "null" if note is None else json.dumps(note, ensure_ascii=False)
    return f'{{"detail":{{}},"note":{shown},"occurred_at":"{iso}","step":"{step}"}}'


def step_digest(step: str, occurred_at: dt.datetime, note: str | None) -> str:
    """:func:`cases.service.step_fingerprint` of a step without detail, without building its JSON
    through the encoder (the batch's hot loop): the same text, so the same digest.

    >>> at = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)
    >>> step_digest("approved", at, "同意") == svc.step_fingerprint("approved", at, "同意", {})
    True
    >>> step_digest("in_review", at, None) == svc.step_fingerprint("in_review", at, None, {})
    True
    """
    return sha256(_digest_text(step, svc.utc(occurred_at).isoformat(), note).encode("utf-8")).hexdigest()


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def micros(value: dt.datetime) -> int:
    """``value`` as microseconds since 1970 (UTC; a naive time is taken as UTC, as :func:`cases.service.utc` does).

    >>> micros(dt.datetime(1970, 1, 1, 0, 0, 1, 5)), micros(dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC))
    (1000005, 1793611800000000)
    """
    return (svc.utc(value) - EPOCH) // _MICROSECOND


_DAY_US = 86_400_000_000
#: every second of a day as ``HH:MM:SS``
_CLOCK = tuple(f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60))


def time_texts(us: int, days: dict[int, str]) -> tuple[str, str]:
    """A time (microseconds since 1970) as ``datetime.isoformat()`` writes it in UTC (a fraction only
    when there is one), and as SQLite's ``DATETIME`` keeps it (SQLAlchemy's text: the fraction always);
    ``days`` holds the dates written so far (a batch's steps fall on a few hundred days).

    >>> at = dt.datetime(2026, 11, 2, 9, 30, 5, 120, tzinfo=dt.UTC)
    >>> time_texts(micros(at), {}), at.isoformat()
    (('2026-11-02T09:30:05.000120+00:00', '2026-11-02 09:30:05.000120'), '2026-11-02T09:30:05.000120+00:00')
    >>> time_texts(micros(at.replace(microsecond=0)), {})[0] == at.replace(microsecond=0).isoformat()
    True
    """
    day, rem = divmod(us, _DAY_US)
    date = days.get(day)
    if date is None:
        date = days[day] = (EPOCH + dt.timedelta(days=day)).date().isoformat()
    second, fraction = divmod(rem, 1_000_000)
    clock = _CLOCK[second]
    if fraction:
        return f"{date}T{clock}.{fraction:06d}+00:00", f"{date} {clock}.{fraction:06d}"
    return f"{date}T{clock}+00:00", f"{date} {clock}.000000"


@dataclass(frozen=True)
class StepColumns:
    """Reported steps as columns (one list per field, the batch's order): what a pulled frame holds,
    taken by :func:`ingest_step_columns` without a :class:`ReportedStep` per row."""

    code: Sequence[str]
    department: Sequence[str]
    seq: Sequence[int]
    step: Sequence[str]
    #: when each happened, microseconds since 1970 (UTC)
    occurred_us: npt.NDArray[np.int64]
    note: Sequence[str | None]
    detail: Sequence[Mapping[str, Any] | None]

    def __len__(self) -> int:
        return len(self.code)

    @classmethod
    def of(cls, reported: Sequence[ReportedStep]) -> StepColumns:
        return cls(
            [r.code for r in reported], [r.department for r in reported], [r.seq for r in reported],
            [r.step for r in reported], np.array([micros(r.occurred_at) for r in reported], dtype=np.int64),
            [r.note for r in reported], [r.detail for r in reported],
        )  # fmt: skip


def _compact(code: str) -> str:
    """The compact supervision code, ``""`` if ``code`` is not a valid one."""
    try:
        return supervision_code.validate(code)
    except (ValueError, TypeError):  # stdnum's ValidationError is a ValueError
        return ""


def _chunks(values: Sequence[object], size: int = CHUNK) -> Iterable[Sequence[object]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def ingest_steps(
    session: Session,
    reported: Sequence[ReportedStep],
    *,
    actor: str,
    now: dt.datetime | None = None,
    catalogue: Catalogue | None = None,
) -> Ingested:
    """Append ``reported`` to the step log and announce each new step; the caller commits
    (:func:`ingest_step_columns` of their columns)."""
    return ingest_step_columns(session, StepColumns.of(reported), actor=actor, now=now, catalogue=catalogue)


def _rows(connection: Connection, sql: str, values: Sequence[object], tail: str = "") -> Iterator[tuple[Any, ...]]:
    """The rows of ``sql`` (ending in ``IN``, then ``tail``) for ``values``, a thousand at a time,
    as the driver hands them back: plain SQL, not compiled per chunk."""
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    for chunk in _chunks(values):
        query = f"{sql} ({', '.join([mark] * len(chunk))}){tail}"
        yield from connection.exec_driver_sql(query, tuple(chunk))  # type: ignore[arg-type]


def _micros_of(value: dt.datetime | str) -> int:
    """A time as the driver hands it back (SQLite: SQLAlchemy's text of the UTC time) in microseconds."""
    return micros(value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value))


#: a case as the batch needs it: id, item code, region, item code and supervision code as JSON
Case = tuple[int, str, str, str, str]


def _known(
    session: Session, codes: Iterable[str]
) -> tuple[dict[str, Case], set[tuple[int, str]], dict[tuple[int, str, int], str], dict[tuple[int, str], int]]:
    """The cases of ``codes`` (code → id, item code, region, item code and code as JSON), their
    dispatches, the fingerprints of their logged steps and each stage's latest step (microseconds)."""
    connection = session.connection()
    cases = {
        code: (case_id, item, region, json.dumps(item), json.dumps(code))
        for case_id, code, item, region in _rows(
            connection, "SELECT id, code, item_code, region_code FROM case_record WHERE code IN", sorted(codes)
        )
    }
    ids = sorted({v[0] for v in cases.values()})
    dispatches = "SELECT case_id, department FROM case_dispatch WHERE case_id IN"
    dispatched = {(case_id, department) for case_id, department in _rows(connection, dispatches, ids)}
    logged = {
        (case_id, department, seq): digest
        for case_id, department, seq, digest in _rows(
            connection, "SELECT case_id, department, seq, fingerprint FROM case_step WHERE case_id IN", ids
        )
    }
    latest: dict[tuple[int, str], int] = {}
    if logged:
        for case_id, department, when in _rows(
            connection, "SELECT case_id, department, MAX(occurred_at) FROM case_step WHERE case_id IN", ids,
            " GROUP BY case_id, department",
        ):  # fmt: skip
            latest[(case_id, department)] = _micros_of(when)
    return cases, dispatched, logged, latest


def ingest_step_columns(
    session: Session,
    reported: StepColumns,
    *,
    actor: str,
    now: dt.datetime | None = None,
    catalogue: Catalogue | None = None,
) -> Ingested:
    """Append ``reported`` to the step log and announce each new step; the caller commits.

    Set-based: a few queries per thousand cases, one INSERT of the new steps and one of their
    events, whatever the batch's size. The cases' status and clocks are :func:`settle`'s. The
    rows are built column by column as the driver takes them (each time's texts from its
    microseconds, each event's payload as its JSON text), not as a dictionary per row.
    """
    now = now or utcnow()
    catalogue = catalogue or load_catalogue()
    out = Ingested()
    codes: dict[str, str] = {}  # as reported → compact
    for c in reported.code:
        if c not in codes:
            codes[c] = _compact(c)
    cases, dispatched, logged, latest = _known(session, {c for c in codes.values() if c})
    days: dict[int, str] = {}
    kinds = {s.value: s.value for s in st.DEPARTMENT_STEPS}  # the step's own text, plain
    needs_detail = {s.value for s in NEEDS_DETAIL}
    departments = catalogue.departments
    as_json: dict[str, str] = {}
    skew = micros(now + svc.CLOCK_SKEW)
    connection = session.connection()
    step_table: Table = CaseStep.__table__  # type: ignore[assignment]
    write = Columns(connection, step_table)
    time_value = _time_value(connection, step_table.c.occurred_at)
    blank = write.one("detail", {})
    flags = (write.one("arrived_out_of_order", False), write.one("arrived_out_of_order", True))
    # the new steps' rows (STEP_COLUMNS) and their events' own fields (subject, region, payload, key)
    rows: list[tuple[Any, ...]] = []
    events: list[tuple[str, str, str, str]] = []
    given_rows = zip(reported.code, reported.department, reported.seq, reported.step, reported.occurred_us.tolist(),
                     reported.note, reported.detail, strict=True)  # fmt: skip
    for given, department, seq, kind, us, note, wanted in given_rows:
        code = codes[given]
        if not code:
            out.refused["invalid_supervision_code"] += 1
            continue
        case = cases.get(code)
        if case is None:
            out.refused["not_found"] += 1
            continue
        if department not in departments:
            out.refused["unknown_department"] += 1
            continue
        case_id = case[0]
        stage = (case_id, department)
        if stage not in dispatched:
            out.refused["not_dispatched"] += 1
            continue
        step = kinds.get(kind)
        if step is None:
            out.refused["step_not_allowed"] += 1
            continue
        detail: dict[str, Any] = {}
        if step in needs_detail:
            missing = missing_list(wanted) if step == st.Step.CORRECTION_REQUESTED else None
            if missing is None:
                out.refused["detail_required"] += 1
                continue
            detail["missing"] = missing
        if us > skew:
            out.refused["time_in_future"] += 1
            continue
        when, text = time_texts(us, days)
        if detail:
            digest = svc.step_fingerprint(step, EPOCH + us * _MICROSECOND, note, detail)
        else:
            digest = sha256(_digest_text(step, when, note).encode("utf-8")).hexdigest()
        key = (case_id, department, seq)
        known = logged.get(key)
        if known is not None:
            if known == digest:
                out.resent += 1
            else:
                out.refused["step_conflict"] += 1
            continue
        logged[key] = digest
        before = latest.get(stage)
        flagged = before is not None and us < before
        if not flagged:
            latest[stage] = us
        jd = as_json.get(department)
        if jd is None:
            jd = as_json[department] = json.dumps(department)
        rows.append((
            case_id, department, seq, step, text if time_value is None else time_value(us), note,
            write.one("detail", detail) if detail else blank, digest, flags[flagged],
        ))  # fmt: skip
        number = seq if type(seq) is int else json.dumps(seq)
        events.append((
            code, case[2],
            f'{{"code": {case[4]}, "item_code": {case[3]}, "department": {jd}, "seq": {number}, "step": "{step}", '
            f'"occurred_at": "{when}", "arrived_out_of_order": {"true" if flagged else "false"}}}',
            f"case.step:{code}:{department}:{seq}",
        ))  # fmt: skip
    if rows:
        if len(rows) >= DEFER_CHECKPOINT_ROWS:
            # the commit returns once the log is written; a worker copies it into the database
            sqlite_wal.defer_checkpoint(session)
        out.case_ids = {r[0] for r in rows}
        constants = {"recorded_at": write.one("recorded_at", now), "actor": write.one("actor", actor)}
        with sqlite_cache(connection, WRITE_CACHE_KIB):
            converted = write.rows(STEP_COLUMNS, rows, done=("occurred_at", "detail", "arrived_out_of_order"))
            insert_tuples(connection, step_table, STEP_COLUMNS, converted, constants=constants)
            _announce(session, events)
    out.appended = len(rows)
    return out


def _time_value(connection: Connection, column: Any) -> Callable[[int], Any] | None:
    """How a time (microseconds since 1970) goes to the driver for ``column``: ``None`` for the
    text :func:`time_texts` writes (SQLite, while SQLAlchemy's conversion writes the same text),
    else a function giving the column's conversion of the time."""
    process = column.type._cached_bind_processor(connection.dialect)
    if connection.dialect.name == "sqlite" and process is not None:
        probes = (dt.datetime(2026, 11, 2, 9, 30, 5, 120, tzinfo=dt.UTC), dt.datetime(1999, 1, 31, tzinfo=dt.UTC))
        if all(process(t) == time_texts(micros(t), {})[1] for t in probes):
            return None
    if process is None:
        return lambda us: EPOCH + us * _MICROSECOND
    return lambda us: process(EPOCH + us * _MICROSECOND)


def _announce(session: Session, events: list[tuple[str, str, str, str]]) -> int:
    """The new steps' ``case.step`` events (subject, region, payload as JSON text, key), with
    :func:`hub.outbox.emit_many`'s rule: an event whose key is already in the outbox is skipped
    (``ON CONFLICT`` on the key, instead of a query per thousand keys first; the keys of one batch
    are distinct by construction). Returns how many were written."""
    session.flush()
    connection = session.connection()
    table: Table = OutboxEvent.__table__  # type: ignore[assignment]
    write = Columns(connection, table)
    names = ("subject", "region_code", "payload", "idempotency_key")
    if connection.dialect.name != "sqlite" or connection.dialect._json_serializer is not None:
        payload = write.processor("payload")
        events = [(s, r, payload(json.loads(p)) if payload else json.loads(p), k) for s, r, p, k in events]
    # else SQLite keeps JSON as json.dumps' text: the payloads are it
    constants = {
        "event_type": write.one("event_type", "case.step"), "holder_code": write.one("holder_code", None),
        "license_type_code": write.one("license_type_code", None), "created_at": write.one("created_at", utcnow()),
    }  # fmt: skip
    rows = write.rows(names, events, done=("payload",))
    return insert_tuples(connection, table, names, rows, constants=constants, skip_conflicts_on=("idempotency_key",))


def settle(session: Session, case_ids: Iterable[int], *, now: dt.datetime | None = None) -> int:
    """Each case's status and clocks from its log, and the stages its new steps release (as
    :func:`cases.service.record_step` does after one step); returns how many cases were settled."""
    now = now or utcnow()
    ids = sorted(set(case_ids))
    n = 0
    for chunk in _chunks(ids):
        for case in session.scalars(select(CaseRecord).where(CaseRecord.id.in_(chunk))):
            reading = svc.refresh(session, case, now)
            dispatch.release(session, case, reading.stages, now)
            n += 1
    return n
