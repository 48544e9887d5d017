"""Department steps in bulk (cases.ingest via the pipeline's task body): the step log gets every new
step once with its event, resends change nothing, a department's step of a case it was not
dispatched and malformed codes are refused and counted, out-of-order arrivals are flagged — and
the benchmark still runs (its figures, not its printed labels)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select

from bench import bench_case_steps
from cases.ingest import settle
from cases.supervision_tables import CaseClock
from cases.tables import CaseRecord, CaseStep
from hub.db import make_engine, migrate, session_factory
from hub.models import OutboxEvent
from pipeline.case_steps import ingest_case_steps

NOW = dt.datetime(2027, 1, 4, tzinfo=dt.UTC)


def test_a_batch_is_logged_once_announced_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    migrate(f"sqlite:///{path}")
    codes = bench_case_steps.load_cases(path, 20)
    frame = bench_case_steps.step_frame(codes, 6)
    # a late arrival: commerce's second step (a day later) before its first is logged
    late = frame[(frame["code"] == codes[0]) & (frame["department"] == "commerce")]
    frame = pd.concat([late.iloc[::-1], frame.drop(late.index)], ignore_index=True)
    bad = pd.DataFrame(
        [
            (codes[1], "land", 1, "accepted", NOW - dt.timedelta(days=1), None),  # land has no stage here
            ("330322-20261102-XXXXX0", "tax", 1, "accepted", NOW - dt.timedelta(days=1), None),  # no such code
            (codes[1], "tax", 9, "correction_requested", NOW - dt.timedelta(days=1), None),  # needs its list
            (codes[1], "tax", 1, "approved", NOW - dt.timedelta(days=1), None),  # tax 1 again, other content
        ],
        columns=frame.columns,
    )
    engine = make_engine(f"sqlite:///{path}")
    sessions = session_factory(engine)
    batch = ingest_case_steps(sessions, pd.concat([frame, bad], ignore_index=True), actor="feed", now=NOW)
    assert batch.ingested.appended == len(frame) == 120
    assert dict(batch.ingested.refused) == {
        "not_dispatched": 1, "invalid_supervision_code": 1, "detail_required": 1, "step_conflict": 1,
    }  # fmt: skip
    assert batch.settled == 20
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(CaseStep)) == 120
        assert s.scalar(select(func.count()).where(OutboxEvent.event_type == "case.step")) == 120
        first = s.scalar(select(CaseRecord.id).where(CaseRecord.code == codes[0]))
        flagged = s.scalars(
            select(CaseStep.seq).where(CaseStep.case_id == first, CaseStep.arrived_out_of_order.is_(True))
        ).all()
        assert flagged == [1]
        # settled: every case's clocks read from its log (each department's and the case's own)
        assert s.scalar(select(func.count()).select_from(CaseClock)) == 20 * 4
        assert {c.status for c in s.scalars(select(CaseRecord))} == {"in_progress"}  # accepted, in review
    again = ingest_case_steps(sessions, frame, actor="feed", now=NOW)
    assert (again.ingested.appended, again.ingested.resent) == (0, 120)
    with sessions() as s:
        assert settle(s, []) == 0
    engine.dispose()


def test_step_ingestion_bench_smoke() -> None:
    figures = bench_case_steps.run(1_200, per_case=12, settle_sample=10)
    assert figures["steps"] == figures["appended"] == figures["logged"] == figures["events"] == 1_200
    assert figures["refused"] == {} and figures["resend_appended"] == 0 and figures["resent"] == 1_200
    assert figures["steps_per_s"] > 0 and figures["peer_steps_per_s"] > 0 and figures["settled"] == 10
