"""The answer to ``POST /v1/cases`` is built from what ``take_in`` wrote, without reading the case
back: it equals the answer ``GET /v1/cases/{code}`` gives for the same case, with and without
``personal:read``, for every intake outcome, recognised and named licences, parties, an agent and
post delivery (SQLite and PostgreSQL); and building it runs no statement.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from cases import intake
from cases.schemas import IntakeIn
from cases.views import case_out, render
from tests.cases import world as w
from tests.cases.world import ADDRESS, E1, P2, P3, World, auth, consent, joint_registration


def _ago(days: int) -> str:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).astimezone(shanghai).isoformat()


BRING = [{"code": c, "provided": "upload"} for c in ("M01", "M02", "M06")] + [{"code": "M03", "provided": "paper"}]

#: name → (body, what the answer shows of it)
BODIES: dict[str, tuple[Callable[[World], dict[str, Any]], Callable[[dict[str, Any]], bool]]] = {
    "accepted, the premises proof recognised, an agent": (
        lambda city: joint_registration(
            agent={"code": P2, "name": w.NAMES[P2], "phone": "13805770001", "authorisation": "委托书 2026-118"}
        ),
        lambda a: (
            a["status"] == "in_progress"
            and any(m["found_by"] == "hub" for m in a["materials"])
            and a["agent"] is not None
        ),
    ),
    "received days ago in +08:00": (
        lambda city: joint_registration(received_at=_ago(3)),
        # the authorisation is granted when the case was received, stored and shown in UTC
        lambda a: len(a["stages"]) == 3 and a["authorisations"][0]["granted_at"] == a["received_at"],
    ),
    "correction required: no authorisation, everything missing": (
        lambda city: joint_registration(materials=[{"code": "M01", "provided": "upload"}], authorisations=[]),
        lambda a: a["status"] == "awaiting_correction" and len(a["missing"]) >= 4 and a["authorisations"] == [],
    ),
    "not accepted, a phone in the reasons": (
        lambda city: joint_registration(outcome="not_accepted", reasons=["申请人电话 13805770002 无法联系"]),
        lambda a: a["status"] == "not_accepted" and a["stages"] == [] and len(a["reasons"]) == 1,
    ),
    "accepted pending (容缺)": (
        lambda city: joint_registration(
            materials=[*BRING, {"code": "M05", "provided": "promised", "promised_by": "2030-01-10"}]
        ),
        lambda a: a["intake_outcome"] == "accepted_pending",
    ),
    "an enterprise's change, its business licence recognised": (
        lambda city: {
            "item_code": "XK00102000",
            "applicant": {"code": E1, "name": w.NAMES[E1], "address": ADDRESS},
            "materials": [{"code": "M01", "provided": "upload"}],
            "authorisations": [consent("M02", "M03")],
        },
        lambda a: "hub" in [m["found_by"] for m in a["materials"] if m["license_id"]],
    ),
    "on commitment (告知承诺)": (
        lambda city: {
            "item_code": "XK00102000",
            "applicant": {"code": E1, "name": w.NAMES[E1]},
            "materials": [{"code": "M01", "provided": "upload"}, {"code": "M03", "provided": "commitment"}],
            "authorisations": [consent("M02")],
        },
        lambda a: a["intake_outcome"] == "accepted_on_commitment",
    ),
    "a licence named by the applicant": (
        lambda city: {
            "item_code": "XK00501000",
            "applicant": {"code": E1, "name": w.NAMES[E1]},
            "materials": [
                {"code": "M01", "provided": "upload"},
                {"code": "M04", "provided": "paper"},
                {"code": "M02", "license_id": city.licences["e1_preview"]},
            ],
            "authorisations": [consent("M02", "M03")],
        },
        lambda a: next(m for m in a["materials"] if m["code"] == "M02")["found_by"] == "applicant",
    ),
    "a transfer: a party's licence through the cross-walk, a provisional buyer, post": (
        lambda city: {
            "item_code": "QR00401000",
            "applicant": {"code": P3, "name": w.NAMES[P3]},
            "parties": [{"role": "transferor", "code": P2, "name": w.NAMES[P2]}],
            "delivery": {"method": "post", "address": ADDRESS},
            "materials": [{"code": c, "provided": "paper"} for c in ("M01", "M03", "M04", "M05", "M06")],
            "authorisations": [consent("M02", holder="transferor")],
        },
        lambda a: a["applicant"]["identity"] == "provisional" and a["parties"] and a["delivery"]["method"] == "post",
    ),
}


@pytest.mark.parametrize("name", list(BODIES))
def test_the_intake_answer_equals_the_timeline_read(city: World, api: TestClient, name: str) -> None:
    make, shows = BODIES[name]
    for key in ("window", "portal_writer"):  # with personal:read, and masked
        headers = auth(city.tokens[key])
        res = api.post("/v1/cases", json=make(city), headers=headers)
        assert res.status_code == 201, res.text
        answer = res.json()
        assert shows(answer), answer
        assert answer["masked"] is (key == "portal_writer")
        read = api.get(f"/v1/cases/{answer['code']}", headers=headers)
        assert read.status_code == 200
        assert answer == read.json()


def test_a_replayed_intake_is_read_back_and_answers_the_same(city: World, api: TestClient) -> None:
    headers = auth(city.tokens["window"], **{"Idempotency-Key": "desk-3/0001"})
    body = joint_registration()
    first = api.post("/v1/cases", json=body, headers=headers)
    again = api.post("/v1/cases", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {**first.json(), "replayed": True}


def test_the_answer_is_built_without_a_statement(city: World) -> None:
    body = IntakeIn.model_validate(joint_registration(received_at=_ago(1)))
    statements: list[str] = []

    def listener(*a: Any) -> None:
        statements.append(str(a[2]))

    with city.sessions() as s:
        taken = intake.take_in(s, body, actor="window", rng=random.Random(7))
        assert taken.rows is not None and not taken.replayed
        event.listen(city.engine, "before_cursor_execute", listener)
        try:
            built = {p: render(taken.rows, personal=p) for p in (True, False)}
        finally:
            event.remove(city.engine, "before_cursor_execute", listener)
        s.commit()
        code = taken.case.code
    assert statements == []
    with city.sessions() as s:
        case = intake.svc.find_case(s, code)
        for personal, out in built.items():
            assert out == case_out(s, case, personal=personal)
