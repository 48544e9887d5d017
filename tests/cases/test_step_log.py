"""The step log is append-only (database triggers and the ORM), steps are idempotent and placed by
their own time; the tables match their migration — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

import cases.tables  # noqa: F401 - registers the tables on Base
import recognition.tables  # noqa: F401
from cases import intake, service
from cases.errors import CaseRefused
from cases.schemas import IntakeIn, StepIn
from cases.steps import LoggedStep, Step, place
from cases.tables import CaseStep, StepLogAppendOnly
from hub.db import make_engine
from hub.models import OutboxEvent
from rigs.testing import schema_drift
from tests.cases import world as w
from tests.cases.world import World, joint_registration


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def city(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    url = request.getfixturevalue("hub_db_url" if request.param == "sqlite" else "pg_hub_db_url")
    built = w.build(url, tmp_path)
    yield built
    built.engine.dispose()


def _case(city: World) -> str:
    with city.sessions() as s:
        received = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
        taken = intake.take_in(s, IntakeIn.model_validate(joint_registration(received_at=received)), actor="test")
        code = taken.case.code
        s.commit()
    return code


def _step(city: World, code: str, department: str, seq: int, kind: str, at: dt.datetime) -> service.Recorded:
    with city.sessions() as s:
        done = service.record_step(s, code, department, StepIn(seq=seq, step=Step(kind), occurred_at=at),
                                   actor=department)  # fmt: skip
        s.commit()
        return done


def test_the_database_refuses_to_change_or_remove_a_step(city: World) -> None:
    code = _case(city)
    now = dt.datetime.now(dt.UTC)
    _step(city, code, "commerce", 1, "accepted", now)
    statements = ["UPDATE case_step SET step = 'approved'", "DELETE FROM case_step"]
    if city.engine.dialect.name == "postgresql":
        statements.append("TRUNCATE case_step CASCADE")
    for sql in statements:
        with city.engine.connect() as conn, pytest.raises(DatabaseError, match="append-only"):
            conn.execute(text(sql))
    with city.sessions() as s:
        assert s.scalar(select(func.count()).select_from(CaseStep)) == 3
        assert set(s.scalars(select(CaseStep.step))) == {"received", "accepted"}


def test_the_orm_refuses_to_flush_a_change_to_a_step(city: World) -> None:
    code = _case(city)
    with city.sessions() as s:
        row = s.scalars(select(CaseStep).order_by(CaseStep.id)).first()
        assert row is not None
        row.step = "withdrawn"
        with pytest.raises(StepLogAppendOnly):
            s.flush()
        s.rollback()
        s.delete(s.scalars(select(CaseStep)).first())
        with pytest.raises(StepLogAppendOnly):
            s.flush()
        s.rollback()
    with city.sessions() as s:
        assert [r.step for r in s.scalars(select(CaseStep).order_by(CaseStep.id))][:1] == ["received"]
    assert code


def test_a_resent_step_changes_nothing_and_late_arrivals_are_placed_by_their_time(city: World) -> None:
    code = _case(city)
    now = dt.datetime.now(dt.UTC)
    first = _step(city, code, "commerce", 2, "approved", now)
    assert first.replayed is False and first.row.arrived_out_of_order is False
    with city.sessions() as s:
        events = s.scalar(select(func.count()).select_from(OutboxEvent))
    again = _step(city, code, "commerce", 2, "approved", now)
    assert again.replayed is True and again.row.id == first.row.id
    with city.sessions() as s:
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == events  # nothing announced twice
    late = _step(city, code, "commerce", 1, "accepted", now - dt.timedelta(minutes=1))
    assert late.row.arrived_out_of_order is True
    commerce = [p for p in late.reading.timeline if p.department == "commerce"]
    assert [(p.seq, p.step, p.impossible) for p in commerce] == [(1, Step.ACCEPTED, None), (2, Step.APPROVED, None)]
    with pytest.raises(CaseRefused) as conflict:
        _step(city, code, "commerce", 2, "rejected", now)
    assert conflict.value.code == "step_conflict"


def _diff(url: str) -> list[Any]:
    # recognition_consumer.department is compared by tests/recognition/test_recognition_migration.py
    return schema_drift(url, {"case_record", "case_material", "case_dispatch", "case_step"})


def test_tables_match_their_migrations_sqlite(hub_db_url: str) -> None:
    assert _diff(hub_db_url) == []


@pytest.mark.postgres
def test_tables_match_their_migrations_postgres(pg_hub_db_url: str) -> None:
    assert _diff(pg_hub_db_url) == []


def test_the_cases_branch_downgrades_and_upgrades(hub_db_url: str) -> None:
    from alembic import command

    from hub.db import alembic_config

    cfg = alembic_config(hub_db_url)
    command.downgrade(cfg, "cases@base")
    command.downgrade(cfg, "recognition_0004_key_limits")
    engine = make_engine(hub_db_url)
    with engine.connect() as conn:
        tables = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))}
        columns = {r[1] for r in conn.execute(text("PRAGMA table_info(recognition_consumer)"))}
    assert not {t for t in tables if t.startswith("case_")} and "department" not in columns
    command.upgrade(cfg, "heads")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM case_step")).scalar() == 0
    engine.dispose()


def test_placing_is_by_time_and_flags_what_cannot_be() -> None:
    t = dt.datetime(2026, 12, 4, 9, tzinfo=dt.UTC)
    m = dt.timedelta(minutes=1)
    log = [
        LoggedStep("window", 1, Step.RECEIVED, t, 1),
        LoggedStep("land", 1, Step.ACCEPTED, t + m, 2),
        LoggedStep("land", 2, Step.CORRECTION_REQUESTED, t + 2 * m, 3),
        LoggedStep("land", 3, Step.APPROVED, t + 3 * m, 4),  # while the correction is outstanding
        LoggedStep("land", 4, Step.RESUMED, t + 4 * m, 5),
        LoggedStep("land", 5, Step.REJECTED, t + 5 * m, 6),  # a second decision
        LoggedStep("tax", 1, Step.RESUMED, t + 6 * m, 7),  # nothing to resume
        LoggedStep("tax", 2, Step.ACCEPTED, t - m, 8),  # before the case was received
        LoggedStep("window", 2, Step.DELIVERED, t + 7 * m, 9),  # no result yet
        LoggedStep("window", 3, Step.WITHDRAWN, t + 8 * m, 10),
        LoggedStep("tax", 3, Step.IN_REVIEW, t + 9 * m, 11),  # after the withdrawal
    ]
    flags = {(s.department, s.seq): s.impossible for s in place(log, received_at=t)}
    assert flags == {
        ("window", 1): None, ("land", 1): None, ("land", 2): None, ("land", 3): "while_correction_outstanding",
        ("land", 4): None, ("land", 5): "decided_twice", ("tax", 1): "resumed_without_correction",
        ("tax", 2): "before_received", ("window", 2): "delivered_before_result", ("window", 3): None,
        ("tax", 3): "after_withdrawal",
    }  # fmt: skip
    assert next(s.order for s in place(log, received_at=t)) == 8  # by time, not by arrival
