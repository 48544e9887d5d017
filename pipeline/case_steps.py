"""The task body that takes a department's pulled case steps into the step log (环节汇聚).

A department's approval system reports its steps as rows (supervision code, department, its
own step number, step, time, note); this body writes a frame of them through
:func:`cases.ingest.ingest_steps` (set-based, one transaction with their events) and then
settles the touched cases (status, clocks, released stages) in the same transaction. It owns
no rule: the case repository's are applied. A frame goes in whole or not at all, and a frame
sent again is recognised step by step (nothing appended twice): a task killed anywhere is
re-run with the same frames (kill points ``case_steps.logged`` and ``case_steps.committed``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from cases.ingest import EPOCH, Ingested, ReportedStep, StepColumns, ingest_step_columns, settle
from hub.killpoints import kill_point

COLUMNS = ("code", "department", "seq", "step", "occurred_at", "note")
#: optional: a correction request's list of what is missing, as JSON text (``[{"code", "name"}]``)
MISSING = "missing"
MICROSECOND = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class StepBatch:
    """What one frame of steps did."""

    ingested: Ingested
    settled: int
    #: seconds spent writing the log and its events, and settling the cases
    log_seconds: float
    settle_seconds: float


def _text(value: object) -> str | None:
    return None if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)) else str(value)  # type: ignore[call-overload]


def _missing(value: object) -> dict[str, object] | None:
    """A ``missing`` cell as a step's detail; text that is not a JSON list is kept as given (and refused)."""
    text = _text(value)
    if text is None:
        return None
    try:
        return {"missing": json.loads(text)}
    except ValueError:
        return {"missing": text}


def reported(frame: pd.DataFrame) -> list[ReportedStep]:
    """The frame's rows as reported steps (``note`` and ``missing`` optional; times as given, made
    aware as UTC if naive)."""
    cols = columns(frame)
    return [
        ReportedStep(code, department, seq, step, EPOCH + us * MICROSECOND, note, detail)
        for code, department, seq, step, us, note, detail in zip(
            cols.code,
            cols.department,
            cols.seq,
            cols.step,
            cols.occurred_us.tolist(),
            cols.note,
            cols.detail,
            strict=True,
        )
    ]


def _texts(values: pd.Series) -> list[str | None]:
    """A column's cells as text, ``None`` where empty (as :func:`_text` reads each)."""
    empty = values.isna().tolist()
    if all(empty):
        return [None] * len(empty)
    return [None if e else str(v) for v, e in zip(values.tolist(), empty, strict=True)]


def columns(frame: pd.DataFrame) -> StepColumns:
    """The frame's rows as columns of reported steps (what :func:`reported` reads, a column at a time)."""
    n = len(frame)
    notes = _texts(frame["note"]) if "note" in frame else [None] * n
    missing = [None if t is None else _missing(t) for t in _texts(frame[MISSING])] if MISSING in frame else [None] * n
    times = pd.to_datetime(frame["occurred_at"], utc=True, format="ISO8601")
    if times.isna().any():
        raise ValueError("a step without its time (occurred_at)")
    # microseconds since 1970 (a datetime keeps no finer time: nanoseconds are dropped, as to_pydatetime does)
    occurred = times.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").astype(np.int64) // 1000
    seqs = frame["seq"]
    return StepColumns(
        [str(c) for c in frame["code"].tolist()],
        [str(d) for d in frame["department"].tolist()],
        seqs.tolist() if isinstance(seqs.dtype, np.dtype) and seqs.dtype.kind in "iu" else [int(s) for s in seqs],
        [str(s) for s in frame["step"].tolist()],
        occurred,
        notes,
        missing,
    )


def ingest_case_steps(
    sessions: sessionmaker[Session],
    frame: pd.DataFrame,
    *,
    actor: str,
    now: dt.datetime | None = None,
    settle_cases: bool = True,
) -> StepBatch:
    """Write ``frame``'s steps and settle their cases, in one transaction."""
    timer = time.perf_counter
    started = timer()
    with sessions() as session:
        ingested = ingest_step_columns(session, columns(frame), actor=actor, now=now)
        kill_point("case_steps.logged")
        logged = timer()
        settled = settle(session, ingested.case_ids, now=now) if settle_cases else 0
        session.commit()
    kill_point("case_steps.committed")
    done = timer()
    return StepBatch(ingested, settled, logged - started, done - logged)
