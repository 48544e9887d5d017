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

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from cases.ingest import Ingested, ReportedStep, ingest_steps, settle
from hub.killpoints import kill_point

COLUMNS = ("code", "department", "seq", "step", "occurred_at", "note")
#: optional: a correction request's list of what is missing, as JSON text (``[{"code", "name"}]``)
MISSING = "missing"


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
    blank = pd.Series([None] * len(frame), index=frame.index)
    notes = frame.get("note", blank)
    missing = frame.get(MISSING, blank)
    times = pd.to_datetime(frame["occurred_at"], utc=True, format="ISO8601")
    out = []
    for code, department, seq, step, at, note, wanting in zip(
        frame["code"], frame["department"], frame["seq"], frame["step"], times, notes, missing, strict=True
    ):
        out.append(ReportedStep(str(code), str(department), int(seq), str(step), at.to_pydatetime(),
                                _text(note), _missing(wanting)))  # fmt: skip
    return out


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
        ingested = ingest_steps(session, reported(frame), actor=actor, now=now)
        kill_point("case_steps.logged")
        logged = timer()
        settled = settle(session, ingested.case_ids, now=now) if settle_cases else 0
        session.commit()
    kill_point("case_steps.committed")
    done = timer()
    return StepBatch(ingested, settled, logged - started, done - logged)
