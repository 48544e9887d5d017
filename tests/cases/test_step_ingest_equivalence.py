"""The step ingestion's column-by-column path (``pipeline.case_steps.columns`` into
``cases.ingest.ingest_step_columns``) does what the row-by-row path did before it
(``tests.cases.step_ingest_reference``), on SQLite and PostgreSQL: for one batch with every case
the checks tell apart — new steps, resends of logged steps and within the batch, a conflicting
resend, an arrival out of order, a department not dispatched, an unknown department and code, a
malformed code, a step a department may not report, correction requests with and without their
list, a time in the future, notes with quotes and Chinese text, naive and fractional times — the
same counts, the same step rows and the same events, byte for byte where SQLite keeps text."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cases import intake, service
from cases.ingest import ingest_step_columns, ingest_steps, micros, time_texts
from cases.schemas import IntakeIn, StepIn
from cases.steps import Step
from cases.tables import CaseStep
from hub.models import OutboxEvent
from hub.outbox import emit
from identifiers import supervision_code
from pipeline.case_steps import columns, reported
from tests.cases.step_ingest_reference import reference_ingest_steps, reference_reported
from tests.cases.world import World, joint_registration

CST = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)


def at(day: int, hour: int = 10, minute: int = 0, micro: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, 0, micro, tzinfo=CST)


def _cases(city: World, n: int) -> list[str]:
    codes = []
    with city.sessions() as s:
        for _ in range(n):
            body = IntakeIn.model_validate(joint_registration())
            codes.append(intake.take_in(s, body, actor="window", now=at(16, 9)).case.code)
        # already logged: commerce's steps 1 and 3 of the first case (step 2 arrives late, below)
        for seq, kind, day in ((1, Step.ACCEPTED, 17), (3, Step.APPROVED, 19)):
            service.record_step(
                s, codes[0], "commerce", StepIn(seq=seq, step=kind, occurred_at=at(day), note="同意"),
                actor="commerce", now=at(day, 12),
            )  # fmt: skip
        s.commit()
    return codes


def _frame(codes: list[str]) -> pd.DataFrame:
    a, b, c = codes
    missing = json.dumps([{"code": "M05", "name": "授权委托书"}], ensure_ascii=False)
    unknown = supervision_code.generate("330322", dt.date(2026, 11, 2), rng=random.Random(3))
    spaced = "-".join((b[:6], b[6:14], b[14:])).lower()  # the same case, as a person might type it
    rows: list[tuple[Any, ...]] = [
        (a, "commerce", 1, "accepted", at(17), "同意"),  # a resend of a logged step
        (a, "commerce", 2, "in_review", at(18), None),  # between logged 1 and 3: out of order
        (a, "commerce", 3, "approved", at(19), "不同意"),  # logged with other content: a conflict
        (a, "tax", 1, "accepted", at(17, 11, 5, 120), 'a "quoted" note'),
        (a, "tax", 1, "accepted", at(17, 11, 5, 120), 'a "quoted" note'),  # resent within the batch
        (a, "tax", 2, "correction_requested", at(18), None, missing),
        (a, "tax", 3, "correction_requested", at(18, 12), None),  # without its list
        (a, "tax", 4, "correction_requested", at(18, 13), None, "not json"),
        (a, "public_security", 1, "approved", at(19), None),
        (a, "public_security", 2, "accepted", at(17), None),  # before step 1: out of order
        (a, "land", 1, "accepted", at(17), None),  # land was not dispatched
        (a, "nowhere", 1, "accepted", at(17), None),
        (a, "commerce", 4, "received", at(19), None),  # the window's step
        (a, "commerce", 5, "no_such_step", at(19), None),
        (a, "commerce", 6, "result_issued", NOW + dt.timedelta(hours=1), None),  # in the future
        (b, "commerce", 1, "accepted", at(17, 9, 30), None),
        (spaced, "commerce", 2, "approved", at(18, 9, 30, 1), "同意\n办结"),
        (b, "tax", 1, "accepted", dt.datetime(2026, 11, 17, 3), None),  # naive: UTC
        (c, "commerce", 1, "accepted", at(17), float("nan")),
        (c, "commerce", 2, "opinion_given", at(18), 12345),  # a note that is not text
        (unknown, "commerce", 1, "accepted", at(17), None),
        ("33032220261102XXXXX0", "commerce", 1, "accepted", at(17), None),
    ]
    return pd.DataFrame(
        [r if len(r) == 7 else (*r, None) for r in rows],
        columns=["code", "department", "seq", "step", "occurred_at", "note", "missing"],
    )


def _written(s: Session) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The step log, the outbox's step events (without ids and creation times) and, on SQLite,
    their stored texts, as ``s`` sees them."""
    steps = [
        (r.case_id, r.department, r.seq, r.step, service.utc(r.occurred_at), service.utc(r.recorded_at), r.actor,
         r.note, r.detail, r.fingerprint, r.arrived_out_of_order)
        for r in s.scalars(select(CaseStep).order_by(CaseStep.id))
    ]  # fmt: skip
    events = [
        (e.event_type, e.subject, e.holder_code, e.region_code, e.license_type_code, e.payload, e.idempotency_key)
        for e in s.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "case.step").order_by(OutboxEvent.id))
    ]  # fmt: skip
    stored: list[tuple[Any, ...]] = []
    if s.get_bind().dialect.name == "sqlite":
        stored += [
            tuple(r) for r in s.execute(text("SELECT occurred_at, recorded_at, detail FROM case_step ORDER BY id"))
        ]
        stored += [
            tuple(r)
            for r in s.execute(text("SELECT payload FROM outbox_event WHERE event_type = 'case.step' ORDER BY id"))
        ]
    return steps, events, stored


def test_a_mixed_batch_does_what_it_did_row_by_row(city: World) -> None:
    codes = _cases(city, 3)
    frame = _frame(codes)
    with city.sessions() as s:
        logged_before = len(_written(s)[0])
        expected = reference_ingest_steps(s, reference_reported(frame), actor="feed", now=NOW)
        wanted = _written(s)
        s.rollback()
    assert (expected.appended, expected.resent) == (10, 2)
    assert dict(expected.refused) == {
        "step_conflict": 1, "detail_required": 2, "not_dispatched": 1, "unknown_department": 1,
        "step_not_allowed": 2, "time_in_future": 1, "not_found": 1, "invalid_supervision_code": 1,
    }  # fmt: skip
    assert len(wanted[0]) == logged_before + 10 and sum(r[-1] for r in wanted[0]) == 2  # two flagged
    for ingest in (
        lambda s: ingest_step_columns(s, columns(frame), actor="feed", now=NOW),
        lambda s: ingest_steps(s, reported(frame), actor="feed", now=NOW),  # one ReportedStep a row
    ):
        with city.sessions() as s:
            got = ingest(s)
            assert (got.appended, got.resent, got.refused, got.case_ids) == (
                expected.appended, expected.resent, expected.refused, expected.case_ids,
            )  # fmt: skip
            assert _written(s) == wanted
            s.rollback()
    with city.sessions() as s:
        ingest_step_columns(s, columns(frame), actor="feed", now=NOW)
        s.commit()
    with city.sessions() as s:  # the batch again: every step it logged recognised, nothing written
        again = ingest_step_columns(s, columns(frame), actor="feed", now=NOW)
        assert (again.appended, again.resent) == (0, 12)
        assert again.refused["step_conflict"] == 1 and _written(s) == wanted


def test_an_event_already_in_the_outbox_is_not_written_again(city: World) -> None:
    """emit_many's rule, kept: a step's event whose key the outbox already holds is skipped (the
    step itself is logged)."""
    code = _cases(city, 1)[0]
    with city.sessions() as s:
        emit(s, "case.step", code, {"earlier": True}, f"case.step:{code}:tax:1")
        s.commit()
    frame = pd.DataFrame(
        [(code, "tax", 1, "accepted", at(17)), (code, "tax", 2, "in_review", at(18))],
        columns=["code", "department", "seq", "step", "occurred_at"],
    )
    with city.sessions() as s:
        assert ingest_step_columns(s, columns(frame), actor="feed", now=NOW).appended == 2
        s.commit()
    with city.sessions() as s:
        keys = s.execute(
            select(OutboxEvent.idempotency_key, OutboxEvent.payload).where(OutboxEvent.subject == code)
            .where(OutboxEvent.event_type == "case.step").order_by(OutboxEvent.id)
        ).all()  # fmt: skip
    tail = [(k, p) for k, p in keys if ":tax:" in k]
    assert tail[0] == (f"case.step:{code}:tax:1", {"earlier": True})
    assert [k for k, _ in tail] == [f"case.step:{code}:tax:1", f"case.step:{code}:tax:2"]


def test_times_are_written_as_isoformat_and_as_sqlalchemy_stores_them_in_sqlite() -> None:
    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    process = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    assert process is not None
    rnd = random.Random(5)
    days: dict[int, str] = {}
    for _ in range(2_000):
        moment = dt.datetime(1971, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
            seconds=rnd.randrange(0, 3_000_000_000), microseconds=rnd.choice([0, rnd.randrange(1_000_000)])
        )
        assert time_texts(micros(moment), days) == (moment.isoformat(), process(moment))
