"""``POST /v1/cases`` on its fast path (:class:`recognition.routers.cases.CaseIntakeRoute`: FastAPI's
dependency and parameter solving skipped for a plain request) answers and audits as FastAPI's full
path does (``fast_paths=False``): new cases, replays under an idempotency key, refusals of the
intake, invalid bodies, other content types, keys the header refuses, no or a wrong API key — on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import fastapi.routing
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cases.tables import CaseRecord
from recognition.tables import AuditEntry
from tests.cases.world import World, auth, joint_registration
from tests.recognition.test_case_timeline_read import _audited, _last, _plain_client

#: parts of an answer or audit entry that differ from one intake of the same body to the next
_VOLATILE = {"code", "received_at", "updated_at", "recorded_at", "occurred_at", "dispatched_at", "created_at",
             "granted_at", "valid_until", "ref", "instance", "subject", "status_url", "due", "started_on",
             "printed_code", "authorisation"}  # fmt: skip


def _steady(value: Any) -> Any:
    """``value`` without the parts that differ between two intakes of the same body."""
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value


def _requests(city: World, run: str) -> list[tuple[str, dict[str, str], bytes]]:
    """(what, headers, body) of every kind of request the route meets; ``run`` keeps idempotency
    keys apart between the two paths."""
    window, writer = auth(city.tokens["window"]), auth(city.tokens["portal_writer"])
    plain = {"Content-Type": "application/json"}
    good = json.dumps(joint_registration()).encode()
    keyed = {**window, **plain, "Idempotency-Key": f"desk-7/{run}"}
    return [
        ("new case", {**window, **plain}, good),
        ("new case, masked", {**writer, **plain}, good),
        ("with a key", keyed, good),
        ("the same key again", keyed, good),
        ("the same key, another application", keyed, json.dumps(joint_registration(subject="别的")).encode()),
        ("a key the header refuses", {**window, **plain, "Idempotency-Key": "desk 7"}, good),
        ("a key too long", {**window, **plain, "Idempotency-Key": "k" * 201}, good),
        ("unknown item", {**window, **plain}, json.dumps({**joint_registration(), "item_code": "XX00000000"}).encode()),
        ("invalid body", {**window, **plain}, json.dumps({"item_code": "XK00101001"}).encode()),
        ("not JSON", {**window, **plain}, b"{item_code"),
        ("empty body", {**window, **plain}, b""),
        ("JSON with a charset", {**window, "Content-Type": "application/json; charset=utf-8"}, good),
        ("text", {**window, "Content-Type": "text/plain"}, good),
        ("no key", plain, good),
        ("an unknown key", {**plain, "Authorization": "Bearer hub_k_nonsense"}, good),
        ("no scope", {**auth(city.tokens["nobody"]), **plain}, good),
        ("a key with no scope and an invalid body", {**auth(city.tokens["nobody"]), **plain}, b"{}"),
    ]


def _entries(city: World, after: int) -> list[Any]:
    return [_steady([*entry[:3], entry[4:]]) for entry in _audited(city, after, _last(city))]


#: the requests the fast path answers itself (every other one goes to FastAPI's full path)
_FAST = {"new case", "new case, masked", "with a key", "the same key again", "the same key, another application",
         "unknown item", "no key", "an unknown key", "no scope"}  # fmt: skip


def test_the_intake_fast_path_answers_and_audits_as_fastapi_does(
    city: World, api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    solved: list[int] = []
    solve = fastapi.routing.solve_dependencies

    async def counted(*args: Any, **kwargs: Any) -> Any:  # FastAPI's own, counted
        solved.append(1)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted)
    statuses = set()
    for plain in _plain_client(city):
        fast_run, full_run = _requests(city, "fast"), _requests(city, "full")
        for (what, fast_headers, fast_body), (_, full_headers, full_body) in zip(fast_run, full_run, strict=True):
            before = _last(city)
            solved.clear()
            a = api.post("/v1/cases", content=fast_body, headers=fast_headers)
            if what in _FAST:  # answered by the fast path: FastAPI solved nothing
                assert not solved, what
            elif what != "not JSON":  # (FastAPI refuses a body that is not JSON before it solves anything)
                assert solved, what
            middle = _last(city)
            b = plain.post("/v1/cases", content=full_body, headers=full_headers)
            assert (a.status_code, a.headers["content-type"]) == (b.status_code, b.headers["content-type"]), what
            assert a.headers.get("idempotent-replayed") == b.headers.get("idempotent-replayed"), what
            assert _steady(a.json()) == _steady(b.json()), what
            assert len(_audited(city, before, middle)) == 1, what
            assert _entries(city, before)[:1] == _entries(city, middle), what
            statuses.add(a.status_code)
    assert statuses == {200, 201, 401, 403, 409, 422}  # every outcome of the route reached
    with city.sessions() as s:  # the new cases of both paths, each written once
        written = s.scalars(select(CaseRecord.code)).all()
        intakes = s.scalars(select(AuditEntry.subject).where(AuditEntry.action == "case_intake")).all()
    assert len(written) == 2 * 4 and sorted(set(intakes)) == sorted(written)
