"""E-supervision (电子监察): each open case's clocks and lights kept, changes of light logged and
announced, red stages escalated (督办).

Two ways a clock is brought up to date, with the same rules (:mod:`cases.clock`):

- :func:`store_clocks` — when a step arrives (called by :func:`cases.service.refresh`, in the
  step's transaction, and by intake for a new case, whose clocks it inserts at once): the case's
  stages and the case itself are read from the whole step log;
- :func:`recompute_lights` — the supervision task, on a schedule: only the *running* clocks
  change from one day to the next, and only by their stored ``running_since``, ``used_before``
  and promised limit, so it reads them grouped by those, lights every group at once
  (:func:`cases.clock.light_codes_many`) and writes only the rows whose days or light changed.

A change of light is a row of ``case_light_change`` (append-only) and a
``supervision.light_changed`` event in the outbox, in the same transaction; a department's stage
turning red raises one escalation (``supervision.escalated``) until the department acknowledges
it. Event keys carry the supervision code, the department and the change's number in that
clock's history — nothing personal — so a change is announced once however often the task runs.

One job, one module: keeping the clocks and lights; both ways of bringing a clock up to date
share the change records, escalations and gauges written here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Date,
    DateTime,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    case,
    cast,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from cases import clock as ck
from cases.catalogue import WINDOW
from cases.steps import LoggedStep, Step
from cases.supervision_gauges import count_open
from cases.supervision_tables import CaseClock, CaseEscalation, CaseLightChange
from cases.tables import CaseDispatch, CaseRecord
from cases.workdays import WorkCalendar
from hub import sqlite_wal
from hub.bulk import insert_rows
from hub.db import Base
from hub.killpoints import kill_point
from hub.models import OutboxEvent, local_today, utcnow
from hub.outbox import emit_many

#: case statuses after which nothing more happens to its clock
FINAL = frozenset({"concluded", "rejected", "withdrawn", "not_accepted"})
#: cases per query when looking up the cases of many changes (bounded IN lists)
CHUNK = 1000
LIGHT_EVENT, ESCALATION_EVENT = "supervision.light_changed", "supervision.escalated"


@dataclass(frozen=True)
class LightChange:
    code: str
    department: str
    from_light: str | None
    to_light: str


def store_clocks(
    session: Session,
    case: CaseRecord,
    timeline: Sequence[LoggedStep],
    status: str,
    *,
    today: dt.date | None = None,
    calendar: WorkCalendar | None = None,
    rule: ck.LightRule | None = None,
    dispatches: Sequence[CaseDispatch] | None = None,
) -> list[LightChange]:
    """Read every clock of ``case`` from its placed ``timeline`` and store them; returns the changes of light.

    ``dispatches``: the case's dispatches when the caller has read them already (else read here).
    A case written in this transaction, with no clocks yet (intake), takes :func:`clock_readings`
    and :func:`insert_clocks` instead: one statement, nothing read first.
    """
    today = today or local_today()
    if dispatches is None:
        q = select(CaseDispatch).where(CaseDispatch.case_id == case.id).order_by(CaseDispatch.id)
        dispatches = list(session.scalars(q))
    readings = clock_readings(case, timeline, status, today=today, calendar=calendar, rule=rule, dispatches=dispatches)
    stored = {c.department: c for c in session.scalars(select(CaseClock).where(CaseClock.case_id == case.id))}
    changes = []
    for department, reading in readings.items():
        row = stored.get(department)
        before = row.light if row is not None else None
        if row is None:
            row = CaseClock(case_id=case.id, department=department)
            session.add(row)
        _write(row, reading, today)
        if (before or ck.GREEN) != reading.light:
            changes.append(_Change(case.id, department, before, reading.light, reading.used, reading.promised_limit,
                                   reading.overdue, reading.promised_due))  # fmt: skip
    session.flush()
    return _record_changes(session, changes, today)


def clock_readings(
    case: CaseRecord,
    timeline: Sequence[LoggedStep],
    status: str,
    *,
    today: dt.date,
    dispatches: Sequence[CaseDispatch],
    calendar: WorkCalendar | None = None,
    rule: ck.LightRule | None = None,
) -> dict[str, ck.ClockReading]:
    """Every clock of ``case`` read from its placed ``timeline``: one per dispatch's department and
    the case's own (:data:`cases.clock.CASE`); reads nothing from the database."""
    calendar = calendar or WorkCalendar.default()
    readings: dict[str, ck.ClockReading] = {}
    for d in dispatches:
        steps = [s for s in timeline if s.department == d.department]
        readings[d.department] = ck.read_clock(
            steps, ck.Limits(d.statutory_days, d.promised_days), calendar, today=today, rule=rule
        )
    extension = max((r.extension for r in readings.values()), default=0)
    ended_at = _ended_at(timeline, status) if status in FINAL else None
    case_steps = ck.case_steps(timeline, ended_at=ended_at, extension=extension)
    readings[ck.CASE] = ck.read_clock(
        case_steps, ck.Limits(case.statutory_days, case.promised_days), calendar, today=today, rule=rule
    )
    return readings


def insert_clocks(
    session: Session, case: CaseRecord, readings: Mapping[str, ck.ClockReading], today: dt.date
) -> list[LightChange]:
    """The clocks of a case that has none yet (:func:`clock_readings`), as :func:`store_clocks`
    would store them, in one INSERT; returns the changes of light (from none)."""
    now = utcnow()
    rows, changes = [], []
    for department, reading in readings.items():
        rows.append({"case_id": case.id, "department": department, **{n: getattr(reading, n) for n in _CLOCK_FIELDS},
                     "as_of": today, "updated_at": now})  # fmt: skip
        if reading.light != ck.GREEN:
            changes.append(_Change(case.id, department, None, reading.light, reading.used, reading.promised_limit,
                                   reading.overdue, reading.promised_due))  # fmt: skip
    if rows:  # every column given: the driver's executemany with the columns' own conversions, no ORM path
        insert_rows(session.connection(), typing.cast(Table, CaseClock.__table__), rows)
    return _record_changes(session, changes, today)


_CLOCK_FIELDS = (
    "state", "started_on", "running_since", "used_before", "used", "extension", "promised_limit",
    "statutory_limit", "promised_due", "statutory_due", "light", "overdue", "statutory_overdue", "unknown_reason",
)  # fmt: skip


def _ended_at(timeline: Sequence[LoggedStep], status: str) -> dt.datetime | None:
    """When a closed case's clock stopped: at the first refusal for a rejected case (不予许可 ends the
    application, though a parallel stage may still act), at the withdrawal for a withdrawn one, else
    at the departments' last step (the results issued; delivery afterwards is not counted)."""
    valid = [s for s in timeline if s.impossible is None]
    if status == "rejected":
        refusals = [s.occurred_at for s in valid if s.step is Step.REJECTED and s.department != WINDOW]
        if refusals:
            return min(refusals)
    if status == "withdrawn":
        withdrawals = [s.occurred_at for s in valid if s.step is Step.WITHDRAWN]
        if withdrawals:
            return min(withdrawals)
    times = [s.occurred_at for s in valid if s.department != WINDOW] or [s.occurred_at for s in valid]
    return max(times) if times else None


def _write(row: CaseClock, r: ck.ClockReading, today: dt.date) -> None:
    for name in _CLOCK_FIELDS:
        setattr(row, name, getattr(r, name))
    row.as_of, row.updated_at = today, utcnow()


@dataclass(frozen=True)
class _Change:
    case_id: int
    department: str
    before: str | None
    after: str
    used: int
    promised_limit: int
    overdue: int
    promised_due: dt.date | None = None


def _record_changes(session: Session, changes: Sequence[_Change], today: dt.date) -> list[LightChange]:
    """Log, announce and (for a stage turned red) escalate changes of light, in bulk: one query per
    thousand cases for their codes and their earlier changes, one INSERT per table."""
    if not changes:
        return []
    case_ids = sorted({c.case_id for c in changes})
    cases: dict[int, tuple[str, str, str]] = {}
    numbers: dict[tuple[int, str], int] = {}
    escalated: dict[tuple[int, str], tuple[int, bool]] = {}  # (count so far, one still open)
    for lo in range(0, len(case_ids), CHUNK):
        ids = case_ids[lo : lo + CHUNK]
        q = select(CaseRecord.id, CaseRecord.code, CaseRecord.item_code, CaseRecord.region_code)
        for cid, code, item, region in session.execute(q.where(CaseRecord.id.in_(ids))):
            cases[cid] = (code, item, region)
        q2 = select(CaseLightChange.case_id, CaseLightChange.department, func.count())
        for cid, dept, n in session.execute(q2.where(CaseLightChange.case_id.in_(ids)).group_by(
                CaseLightChange.case_id, CaseLightChange.department)):  # fmt: skip
            numbers[(cid, dept)] = int(n)
        q3 = select(CaseEscalation.case_id, CaseEscalation.department, func.count(),
                    func.count(CaseEscalation.id).filter(CaseEscalation.acknowledged_at.is_(None)))  # fmt: skip
        for cid, dept, n, still_open in session.execute(q3.where(CaseEscalation.case_id.in_(ids)).group_by(
                CaseEscalation.case_id, CaseEscalation.department)):  # fmt: skip
            escalated[(cid, dept)] = (int(n), bool(still_open))
    now = utcnow()
    rows, events, escalations, out = [], [], [], []
    for c in changes:
        code, item, region = cases[c.case_id]
        key = (c.case_id, c.department)
        numbers[key] = numbers.get(key, 0) + 1
        rows.append({"case_id": c.case_id, "department": c.department, "from_light": c.before, "to_light": c.after,
                     "used": c.used, "promised_limit": c.promised_limit, "overdue": c.overdue, "as_of": today,
                     "changed_at": now})  # fmt: skip
        events.append({
            "event_type": LIGHT_EVENT, "subject": code, "region_code": region,
            "payload": {"code": code, "item_code": item, "department": _named(c.department),
                        "from": c.before, "to": c.after, "used": c.used, "promised_limit": c.promised_limit,
                        "overdue": c.overdue, "promised_due": c.promised_due.isoformat() if c.promised_due else None,
                        "as_of": today.isoformat()},
            "idempotency_key": f"supervision.light:{code}:{c.department}:{numbers[key]}",
        })  # fmt: skip
        if c.after == ck.RED and c.department != ck.CASE and not escalated.get(key, (0, False))[1]:
            n = escalated.get(key, (0, False))[0] + 1
            escalated[key] = (n, True)
            escalations.append({"case_id": c.case_id, "department": c.department, "overdue": c.overdue,
                                "raised_on": today, "raised_at": now})  # fmt: skip
            events.append({
                "event_type": ESCALATION_EVENT, "subject": code, "region_code": region,
                "payload": {"code": code, "item_code": item, "department": c.department, "overdue": c.overdue,
                            "raised_on": today.isoformat(), "escalation": n},
                "idempotency_key": f"supervision.escalated:{code}:{c.department}:{n}",
            })  # fmt: skip
        out.append(LightChange(code, c.department, c.before, c.after))
    session.execute(insert(CaseLightChange), rows)
    if escalations:
        session.execute(insert(CaseEscalation), escalations)
    emit_many(session, events)
    return out


def _named(department: str) -> str | None:
    return None if department == ck.CASE else department


def acknowledge(session: Session, escalation_id: int, department: str, *, by: str, note: str | None) -> CaseEscalation:
    """The department's acknowledgement of an escalation (its own only)."""
    row = session.get(CaseEscalation, escalation_id)
    if row is None or row.department != department:
        raise LookupError(f"no escalation {escalation_id} of {department}")
    if row.acknowledged_at is None:
        row.acknowledged_at, row.acknowledged_by, row.note = utcnow(), by, note
        session.flush()
    return row


@dataclass(frozen=True)
class Recomputed:
    running: int
    updated: int
    changes: int


def recompute_lights(
    session: Session,
    *,
    today: dt.date | None = None,
    calendar: WorkCalendar | None = None,
    rule: ck.LightRule | None = None,
) -> Recomputed:
    """Bring every running clock up to ``today`` at once; log and announce the changes of light.

    Set-based, in the session's transaction. A running clock's days and light depend only on
    when it last started or resumed, the working days it used before, and its promised limit
    (:func:`cases.clock.light_codes_many`); one query reads the running clocks grouped by those
    (with their department and stored days and light, counted), the groups are lit at once and
    go into a temporary table, and the database does the rest clock by clock: the changes of
    light into a second temporary table (``INSERT … SELECT``), from which the escalations, the
    events and the log are written, then each clock whose days or light moved is written once
    (``UPDATE … FROM``) — the same rows and events as :func:`store_clocks` writes for one case,
    each escalation right after the change that raised it.
    """
    calendar = calendar or WorkCalendar.default()
    today = today or local_today()
    connection = session.connection()
    dialect = connection.dialect.name
    rows = _read_running(connection, dialect)
    if not rows:
        count_open(session, today)
        return Recomputed(0, 0, 0)
    department, since_days, before_col, limit_col, used_col, light_col, count_col = zip(*rows, strict=True)
    since = np.array(since_days, dtype=np.int64).astype("datetime64[D]")
    before, limit = np.array(before_col, dtype=np.int64), np.array(limit_col, dtype=np.int64)
    used, codes = ck.light_codes_many(calendar, running_since=since, used_before=before, promised=limit,
                                      today=today, rule=rule)  # fmt: skip
    counts = np.array(count_col, dtype=np.int64)
    changed = codes != np.array(light_col, dtype=np.int8)
    moved = changed | (used != np.array(used_col, dtype=np.int64))
    turned = int(counts[changed].sum())
    if moved.any():
        now = utcnow()
        connection = session.connection()
        with _bulk_writes(session, dialect, int(counts.sum())):
            _stage_groups(connection, since, before, limit, used, codes)
            if turned:
                _stage_changes(session, dialect)
                _log_changes(session, dialect, today, now)
            _write_clocks(session, today, now, changes=bool(turned))
            _GROUPS.drop(connection)
            if turned:
                _MOVES.drop(connection)
        kill_point("supervision.written")  # everything above is rolled back: the next run does it again
    count_open(session, today, running=(department, codes, counts))
    return Recomputed(int(counts.sum()), int(counts[moved].sum()), turned)


#: what decides a running clock's days and light, with what it has stored: the columns it is grouped by
_GROUP_BY = "department, running_since, used_before, promised_limit, used, light"


def _read_running(connection: Connection, dialect: str) -> list[tuple[Any, ...]]:
    """The running clocks in groups: department, ``running_since`` as days since 1970, used
    before, promised limit, stored days, stored light as its code, and how many clocks.

    PostgreSQL aggregates by hashing; SQLite's ``GROUP BY`` would sort every clock, so there the
    clocks are counted into a temporary table keyed by the group (an upsert per clock into a
    table of a few hundred rows, about a third of the sort's CPU), then read."""
    source, clocks, where, group = "case_clock", "count(*)", f"WHERE state = '{ck.RUNNING}'", f"GROUP BY {_GROUP_BY}"
    if dialect == "sqlite":
        source, clocks, where, group = "tmp_supervision_running", "clocks", "", ""
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {source}")
        connection.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {source} ({_GROUP_BY}, clocks INTEGER NOT NULL, PRIMARY KEY ({_GROUP_BY}))"
        )
        connection.exec_driver_sql(  # WHERE before ON CONFLICT: SQLite's parser needs it
            f"INSERT INTO {source} SELECT {_GROUP_BY}, 1 FROM case_clock WHERE state = '{ck.RUNNING}' "
            f"ON CONFLICT ({_GROUP_BY}) DO UPDATE SET clocks = clocks + 1"
        )
    raw = connection.connection.cursor()
    try:
        raw.execute(
            f"SELECT department, {_epoch_days(dialect, 'running_since')}, used_before, promised_limit, used, "
            f"{_LIGHT_CODE}, {clocks} FROM {source} {where} {group}"
        )
        rows = [tuple(row) for row in raw.fetchall()]
    finally:
        raw.close()
    if dialect == "sqlite":
        connection.exec_driver_sql(f"DROP TABLE {source}")
    return rows


#: SQLite's page cache while the task writes (KiB): the clocks, the log, the outbox and their
#: indexes stay in memory for the transaction instead of spilling to the write-ahead log
BULK_CACHE_KIB = 1_048_576
#: from this many running clocks on, the commit leaves the checkpoint to a worker (:mod:`hub.sqlite_wal`)
DEFER_CHECKPOINT_MIN = 50_000


@contextlib.contextmanager
def _bulk_writes(session: Session, dialect: str, running: int) -> Iterator[None]:
    """SQLite: a large page cache for the writes, and the checkpoint of a large run's commit
    left to a worker thread (the commit returns once the log is written and synced)."""
    if dialect != "sqlite":
        yield
        return
    if running >= DEFER_CHECKPOINT_MIN:
        sqlite_wal.defer_checkpoint(session)
    raw: Any = session.connection().connection.driver_connection
    (old_cache,) = raw.execute("PRAGMA cache_size").fetchone()
    raw.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA cache_size={int(old_cache)}")


#: a stored light as its code in :data:`cases.clock.LIGHTS`
_LIGHT_CODE = (
    "CASE light " + " ".join(f"WHEN '{light}' THEN {i}" for i, light in enumerate(ck.LIGHTS[:-1])) + " ELSE 3 END"
)


def _epoch_days(dialect: str, column: str) -> str:
    """SQL for a date column as days since 1970-01-01 (NumPy's ``datetime64[D]``)."""
    if dialect == "sqlite":
        return f"CAST(julianday({column}) - 2440587.5 AS INTEGER)"
    return f"({column} - DATE '1970-01-01')"


#: what a run's running clocks come to, by what decides it: the day each last started or
#: resumed, the working days it used before, its promised limit
_GROUPS = Table(
    "tmp_supervision_groups",
    MetaData(),
    Column("running_since", Date, primary_key=True),
    Column("used_before", Integer, primary_key=True),
    Column("promised_limit", Integer, primary_key=True),
    Column("used", Integer, nullable=False),
    Column("overdue", Integer, nullable=False),
    Column("light", String(8), nullable=False),
    prefixes=["TEMPORARY"],
)


def _stage_groups(
    connection: Connection,
    since: npt.NDArray[np.datetime64],
    before: npt.NDArray[np.int64],
    limit: npt.NDArray[np.int64],
    used: npt.NDArray[np.int64],
    codes: npt.NDArray[np.int8],
) -> None:
    """Each distinct (``running_since``, ``used_before``, ``promised_limit``) once, with the days,
    overdue and light :func:`cases.clock.light_codes_many` gave it, into ``_GROUPS``."""
    _recreate(connection, _GROUPS)
    rows: dict[tuple[dt.date, int, int], dict[str, Any]] = {}
    overdue = np.maximum(used - limit, 0)
    for d, b, lim, u, o, c in zip(since.tolist(), before.tolist(), limit.tolist(), used.tolist(), overdue.tolist(),
                                  codes.tolist(), strict=True):  # fmt: skip
        rows[(d, b, lim)] = {"running_since": d, "used_before": b, "promised_limit": lim, "used": u, "overdue": o,
                             "light": ck.LIGHTS[c]}  # fmt: skip
    connection.execute(insert(_GROUPS), list(rows.values()))


def _grouped(clock: Table) -> ColumnElement[bool]:
    """A running clock joined to its group in ``_GROUPS``."""
    g = _GROUPS.c
    return (
        (clock.c.state == ck.RUNNING)
        & (g.running_since == clock.c.running_since)
        & (g.used_before == clock.c.used_before)
        & (g.promised_limit == clock.c.promised_limit)
    )


def _write_clocks(session: Session, today: dt.date, now: dt.datetime, *, changes: bool) -> None:
    """Every running clock brought up to ``today``, each written once (``UPDATE … FROM``): those
    whose light changed from ``_MOVES`` (days, overdue, light; each looked up by its key), then
    those whose days alone moved from their group in ``_GROUPS`` (days and overdue: a clock
    whose light is not written stays where it is in the ``(state, light)`` index)."""
    g, m, clock = _GROUPS.c, _MOVES.c, _table(CaseClock)
    stamp = {"as_of": literal(today, Date), "updated_at": literal(now, DateTime(timezone=True))}
    if changes:
        session.execute(
            update(clock)
            .where(clock.c.case_id == m.case_id, clock.c.department == m.department)
            .values(used=m.used, overdue=m.overdue, light=m.to_light, **stamp)
        )
    session.execute(
        update(clock)
        .where(_grouped(clock), clock.c.light == g.light, clock.c.used != g.used)
        .values(used=g.used, overdue=g.overdue, **stamp)
    )


def _table(model: type[Base]) -> Table:
    """A model's table, for Core statements (no ORM synchronisation of the rows they touch)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _recreate(connection: Connection, table: Table) -> None:
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")
    table.create(connection)


#: the clocks whose light a run changed, in the order of their keys (``seq``); ``escalation``: a
#: red stage's number of escalations, when it is escalated
_MOVES = Table(
    "tmp_supervision_moves",
    MetaData(),
    Column("seq", Integer, primary_key=True, autoincrement=False),  # SQLite: the rowid, read in order unsorted
    Column("case_id", BigInteger, nullable=False),
    Column("department", String(40), nullable=False),
    Column("used", Integer, nullable=False),
    Column("overdue", Integer, nullable=False),
    Column("promised_limit", Integer, nullable=False),
    Column("from_light", String(8), nullable=False),
    Column("to_light", String(8), nullable=False),
    Column("escalation", Integer),
    prefixes=["TEMPORARY"],
)


def _stage_changes(session: Session, dialect: str) -> None:
    """The running clocks whose group's light differs from theirs into ``_MOVES`` by one
    ``INSERT … SELECT``, numbered in the order read (SQLite: the rowid ``seq`` each row gets as it
    is inserted, no sort; PostgreSQL: ``row_number()`` over the clocks' keys)."""
    connection = session.connection()
    _recreate(connection, _MOVES)
    g, clock = _GROUPS.c, _table(CaseClock)
    names = ["case_id", "department", "used", "overdue", "promised_limit", "from_light", "to_light"]
    seq = [] if dialect == "sqlite" else [func.row_number().over(order_by=(clock.c.case_id, clock.c.department))]
    session.execute(
        insert(_MOVES).from_select(
            ["seq"] * len(seq) + names,
            select(
                *seq,
                clock.c.case_id,
                clock.c.department,
                g.used,
                g.overdue,
                clock.c.promised_limit,
                clock.c.light,
                g.light,
            ).where(_grouped(clock), clock.c.light != g.light),
        )
    )


def _log_changes(session: Session, dialect: str, today: dt.date, now: dt.datetime) -> None:
    """The staged changes of light escalated, announced (numbered after the clock's earlier
    changes), then logged."""
    m = _MOVES.c
    stage = (CaseEscalation.case_id == m.case_id) & (CaseEscalation.department == m.department)
    still_open = select(CaseEscalation.id).where(stage, CaseEscalation.acknowledged_at.is_(None)).exists()
    escalating = session.execute(
        update(_MOVES)
        .where(m.to_light == ck.RED, m.department != ck.CASE, ~still_open)
        .values(escalation=select(func.count()).where(stage).scalar_subquery() + 1)
    )
    today_, now_ = literal(today, Date), literal(now, DateTime(timezone=True))
    session.execute(
        insert(_table(CaseEscalation)).from_select(
            ["case_id", "department", "overdue", "raised_on", "raised_at"],
            select(m.case_id, m.department, m.overdue, today_, now_).where(m.escalation.is_not(None)).order_by(m.seq),
        )
    )
    _announce(session, dialect, today, now, escalations=bool(escalating.rowcount))  # type: ignore[attr-defined]
    session.execute(  # after the announcement: its numbers count the changes logged before this run
        insert(_table(CaseLightChange)).from_select(
            ["case_id", "department", "from_light", "to_light", "used", "promised_limit", "overdue", "as_of",
             "changed_at"],
            select(m.case_id, m.department, m.from_light, m.to_light, m.used, m.promised_limit, m.overdue, today_,
                   now_).order_by(m.seq),
        )
    )  # fmt: skip


def _announce(session: Session, dialect: str, today: dt.date, now: dt.datetime, *, escalations: bool) -> None:
    """The outbox events of the moves' changes of light and escalations, as :func:`_record_changes`
    builds them, each change's escalation right after it; a key already in the outbox is skipped
    (:func:`_new_events`).
    Without escalations the changes are read in their order as stored (no sort)."""
    m, r = _MOVES.c, CaseRecord.__table__.c
    obj = func.json_object if dialect == "sqlite" else func.json_build_object

    def key(name: str) -> ColumnElement[Any]:
        return literal_column(f"'{name}'")

    as_of = cast(literal(today.isoformat()), String)
    text_ = functools.partial(cast, type_=String)
    now_ = literal(now, DateTime(timezone=True))
    joined = _MOVES.join(CaseRecord.__table__, r.id == m.case_id)
    light_payload = obj(
        key("code"), r.code, key("item_code"), r.item_code,
        key("department"), case((m.department == ck.CASE, null()), else_=m.department),
        key("from"), m.from_light, key("to"), m.to_light, key("used"), m.used, key("promised_limit"), m.promised_limit,
        key("overdue"), m.overdue, key("promised_due"), null(), key("as_of"), as_of,
    )  # fmt: skip
    same_clock = (CaseLightChange.case_id == m.case_id) & (CaseLightChange.department == m.department)
    number = select(func.count()).where(same_clock).scalar_subquery() + 1  # the change's number in its clock's history
    light_key: ColumnElement[Any] = (
        literal_column("'supervision.light:'") + r.code + ":" + m.department + ":" + text_(number)
    )
    light_type: ColumnElement[Any] = literal_column(f"'{LIGHT_EVENT}'")
    columns = ["event_type", "subject", "holder_code", "region_code", "license_type_code", "payload",
               "idempotency_key", "created_at"]  # fmt: skip
    if not escalations:
        session.execute(
            _new_events(
                dialect,
                columns,
                select(light_type, r.code, null(), r.region_code, null(), light_payload, light_key, now_)
                .select_from(joined)
                .where(true())
                .order_by(m.seq),
            )
        )
        return
    light = select(
        (m.seq * 2).label("ord"), light_type.label("event_type"), r.code.label("subject"),
        r.region_code.label("region_code"), light_payload.label("payload"), light_key.label("key"),
    ).select_from(joined)  # fmt: skip
    escalated = select(
        (m.seq * 2 + 1).label("ord"),
        literal_column(f"'{ESCALATION_EVENT}'").label("event_type"),
        r.code,
        r.region_code,
        obj(key("code"), r.code, key("item_code"), r.item_code, key("department"), m.department,
            key("overdue"), m.overdue, key("raised_on"), as_of, key("escalation"), m.escalation),
        literal_column("'supervision.escalated:'") + r.code + ":" + m.department + ":" + text_(m.escalation),
    ).select_from(joined).where(m.escalation.is_not(None))  # fmt: skip
    e = union_all(light, escalated).subquery("events").c
    session.execute(
        _new_events(
            dialect,
            columns,
            select(e.event_type, e.subject, null(), e.region_code, null(), e.payload, e.key, now_)
            .where(true())
            .order_by(e.ord),
        )
    )


def _new_events(dialect: str, columns: list[str], rows: Select[Any]) -> Executable:
    """``INSERT … SELECT`` into the outbox, a row whose key is already there skipped by the key's
    own unique index (``ON CONFLICT (idempotency_key) DO NOTHING``: no second lookup per row)."""
    dialect_insert = sqlite_insert if dialect == "sqlite" else pg_insert
    return (
        dialect_insert(_table(OutboxEvent))
        .from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=[OutboxEvent.idempotency_key.key])
    )


def escalations(session: Session, *, open_only: bool = True) -> list[CaseEscalation]:
    q = select(CaseEscalation).order_by(CaseEscalation.id)
    if open_only:
        q = q.where(CaseEscalation.acknowledged_at.is_(None))
    return list(session.scalars(q))
