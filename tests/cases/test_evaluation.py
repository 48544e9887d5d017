"""好差评: the applicant's evaluation of a concluded case through the API, once per case, audited,
counted in the figures — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from cases.stats import figures
from cases.supervision_tables import CaseEvaluation
from recognition.tables import AuditEntry
from rigs.testing import schema_drift
from tests.cases import world as w
from tests.cases.test_notices import conclude, take_in
from tests.cases.world import World, auth, joint_registration


@pytest.fixture()
def client(city: World) -> Iterator[TestClient]:
    yield from w.client(city)


def evaluate(client: TestClient, city: World, code: str, consumer: str = "portal_writer", **body: object) -> Response:
    return client.post(f"/v1/cases/{code}/evaluation", json=body, headers=auth(city.tokens[consumer]))


def test_a_concluded_case_is_evaluated_once_and_counted(city: World, client: TestClient) -> None:
    code = take_in(city, joint_registration())
    early = evaluate(client, city, code, grade="satisfied")
    assert (early.status_code, early.json()["code"]) == (409, "case_not_concluded")
    conclude(city, code)
    comment = "窗口很热情，回电13857712345"
    first = evaluate(client, city, code, grade="dissatisfied", comment=comment, channel="window")
    assert first.status_code == 201
    body = first.json()
    assert (body["grade"], body["grade_name"], body["poor"], body["channel"], body["replayed"]) == (
        "dissatisfied", "不满意", True, "window", False)  # fmt: skip
    assert w.PHONE not in body["comment"] and body["comment"].startswith("窗口很热情")  # no personal:read: scrubbed
    again = evaluate(client, city, code, grade="dissatisfied", comment=comment, channel="window")
    assert again.status_code == 200 and again.json()["replayed"] is True
    other = evaluate(client, city, code, grade="very_satisfied")
    assert (other.status_code, other.json()["code"]) == (409, "already_evaluated")
    shown = client.get(f"/v1/cases/{code}", headers=auth(city.tokens["portal"])).json()["evaluation"]
    assert {k: v for k, v in shown.items() if k != "evaluated_at"} == {
        **{k: v for k, v in body.items() if k != "evaluated_at"}, "replayed": False}  # fmt: skip
    with city.sessions() as s:
        (row,) = s.scalars(select(CaseEvaluation))
        assert (row.grade, row.comment, row.recorded_by) == ("dissatisfied", comment, "portal_writer")
        audited = s.scalars(select(AuditEntry.outcome).where(AuditEntry.action == "case_evaluation")).all()
        assert sorted(audited) == ["ok", "replayed"]
        november = {"since": dt.date(2026, 11, 1), "until": dt.date(2026, 11, 30)}  # received 16 November
        by_item = {f.key: f for f in figures(s, **november)}
        by_department = {f.key: f for f in figures(s, **november, by="department")}
    assert (by_item["XK00101001"].evaluated, by_item["XK00101001"].poor, by_item["*"].poor_rate) == (1, 1, 1.0)
    assert {k: (f.evaluated, f.poor) for k, f in by_department.items()} == {
        "commerce": (1, 1), "tax": (1, 1), "public_security": (1, 1), "*": (1, 1)}  # fmt: skip


def test_who_may_evaluate(city: World, client: TestClient) -> None:
    code = take_in(city, joint_registration())
    conclude(city, code)
    assert evaluate(client, city, code, consumer="portal", grade="satisfied").status_code == 403  # cases:read only
    assert evaluate(client, city, code, grade="great").status_code == 422
    assert evaluate(client, city, "330322-20261116-XXXXXX", grade="satisfied").status_code in (404, 422)


def test_the_evaluation_table_matches_its_migration(city: World) -> None:
    assert schema_drift(city.url, {CaseEvaluation.__tablename__}) == []
