"""The timeline read of ``GET /v1/cases/{code}`` (:mod:`recognition.case_reads`: precompiled statements
on a DBAPI connection) answers exactly what :func:`cases.views.case_out` answers through the ORM, for
every kind of reader, on SQLite and PostgreSQL: recognised and revoked licences, authorisations,
issued results, a conclusion, an evaluation, a refused intake; and a department that has no stage
in a case gets the same 404 as a code that does not exist."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from cases import service
from cases.views import case_out, gather, render
from hub.settings import get_settings
from identifiers import supervision_code
from recognition.app import create_app
from recognition.case_reads import case_rows
from recognition.config import RecognitionSettings
from recognition.directory import LicenseDirectory
from recognition.tables import AuditEntry
from tests.cases import world as w
from tests.cases.test_conclusion import issue
from tests.cases.test_notices import conclude, take_in
from tests.cases.world import PHONE, World, auth, joint_registration

#: reader → whether its key may see personal data
READERS = {"window": True, "portal": False, "commerce": False, "tax": False}


def _cases(city: World, api: TestClient) -> dict[str, str]:
    """One case of each shape the answer has parts for."""
    open_case = take_in(city, joint_registration())  # M04 recognised under the applicant's authorisation
    city.service.revoke(city.licences["p1_property"], "cancelled")  # … and flagged on the open case now
    done = take_in(city, joint_registration(applicant=w.P2))
    for type_code in ("1101", "1102"):
        issue(city, done, type_code)
    conclude(city, done)
    graded = api.post(f"/v1/cases/{done}/evaluation", headers=auth(city.tokens["portal_writer"]),
                      json={"grade": "dissatisfied", "comment": f"回电{PHONE}", "channel": "window"})  # fmt: skip
    assert graded.status_code == 201, graded.text
    refused = take_in(city, joint_registration(outcome="not_accepted", reasons=[f"材料不全，请致电{PHONE}"]))
    return {"open": open_case, "concluded": done, "not_accepted": refused}


def test_the_timeline_read_answers_as_case_out_does(city: World, api: TestClient) -> None:
    codes = _cases(city, api)
    for shape, code in codes.items():
        for reader, personal in READERS.items():
            res = api.get(f"/v1/cases/{code}", headers=auth(city.tokens[reader]))
            with city.sessions() as s:
                try:
                    case = service.find_case(s, code, department=None if reader in ("window", "portal") else reader)
                except service.CaseRefused:
                    assert shape == "not_accepted" and res.status_code == 404, (shape, reader, res.text)
                    continue
                expected = case_out(s, case, personal=personal).model_dump(mode="json")
            assert res.status_code == 200, (shape, reader, res.text)
            assert res.json() == expected, (shape, reader)
    with city.sessions() as s:
        shown = case_out(s, service.find_case(s, codes["open"]), personal=False)
        done = case_out(s, service.find_case(s, codes["concluded"]), personal=False)
    # the parts compared above are there to compare
    assert [m.flag for m in shown.materials if m.code == "M04"] == ["licence_revoked"] and shown.authorisations
    assert done.conclusion is not None and len(done.results) == 2 and done.evaluation is not None
    assert PHONE not in str(done.evaluation.comment) and len(done.timeline) >= 11


def test_the_rows_read_directly_equal_the_orm_rows(city: World, api: TestClient) -> None:
    codes = _cases(city, api)
    now = dt.datetime.now(dt.UTC)
    with city.engine.connect() as conn:
        dbapi_conn = conn.connection.dbapi_connection
        for code in codes.values():
            direct = case_rows(dbapi_conn, city.engine.dialect, code)
            assert direct is not None
            with city.sessions() as s:
                orm = gather(s, service.find_case(s, code))
                for personal in (True, False):
                    assert render(direct, personal=personal, now=now) == render(orm, personal=personal, now=now)
            assert case_rows(dbapi_conn, city.engine.dialect, code, department="land") is None  # no stage there
        assert case_rows(dbapi_conn, city.engine.dialect, "33032220261101AAAAAT") is None


def test_a_department_without_a_stage_and_a_bad_code(city: World, api: TestClient) -> None:
    code = take_in(city, joint_registration())
    land = api.get(f"/v1/cases/{code}", headers=auth(city.tokens["land"]))
    missing = api.get("/v1/cases/33032220261101AAAAAT", headers=auth(city.tokens["land"]))
    assert (land.status_code, land.json()["code"]) == (404, "not_found")
    assert {k: v for k, v in land.json().items() if k != "instance"} == {
        k: v for k, v in missing.json().items() if k != "instance"
    }
    typo = api.get(f"/v1/cases/{code[:-1]}{'1' if code[-1] != '1' else '2'}", headers=auth(city.tokens["portal"]))
    assert (typo.status_code, typo.json()["code"]) == (422, "invalid_supervision_code")
    nobody = api.get(f"/v1/cases/{code}", headers=auth(city.tokens["nobody"]))
    assert nobody.status_code == 403


def _plain_client(city: World) -> Iterator[TestClient]:
    """The same app with every request left to FastAPI's own parsing (``fast_paths=False``)."""
    app = create_app(
        get_settings(), engine=city.engine, directory=LicenseDirectory(city.service.store, city.service.signer),
        config=RecognitionSettings(api_key_cache_seconds=0.0), audit_process=False, fast_paths=False,
    )  # fmt: skip
    with TestClient(app, raise_server_exceptions=False) as tc:
        yield tc


def _audited(city: World, after: int, until: int) -> list[tuple[Any, ...]]:
    with city.sessions() as s:
        rows = s.scalars(
            select(AuditEntry).where(AuditEntry.seq > after, AuditEntry.seq <= until).order_by(AuditEntry.seq)
        )
        return [(r.consumer, r.action, r.resource, r.subject, r.fields, r.outcome, r.detail) for r in rows]


def _last(city: World) -> int:
    with city.sessions() as s:
        return int(s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0)


def test_the_fast_path_answers_and_audits_as_fastapi_does(city: World, api: TestClient) -> None:
    code = take_in(city, joint_registration())
    printed = supervision_code.format(code)
    paths = [code, printed, code.lower(), f" {code}", code[:-1] + ("1" if code[-1] != "1" else "2"),
             "33032220261101AAAAAT", "X" * 64, "X" * 65, "%20"]  # fmt: skip
    keys: list[dict[str, str]] = [auth(city.tokens[n]) for n in ("window", "portal", "commerce", "land", "nobody")]
    keys += [{}, {"Authorization": "Bearer hub_k_nonsense"}, {**auth(city.tokens["portal"]), "X-Purpose": "audit"}]
    statuses = set()
    for plain in _plain_client(city):
        for path in paths:
            for headers in keys:
                before = _last(city)
                a = api.get(f"/v1/cases/{path}", headers=headers)
                middle = _last(city)
                b = plain.get(f"/v1/cases/{path}", headers=headers)
                assert (a.status_code, a.headers["content-type"]) == (b.status_code, b.headers["content-type"]), path
                assert a.json() == b.json(), (path, headers.keys())
                written = _audited(city, before, middle)
                assert len(written) == 1 and written == _audited(city, middle, _last(city)), path
                statuses.add(a.status_code)
    assert statuses == {200, 401, 403, 404, 422}  # every outcome of the route reached
