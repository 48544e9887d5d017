"""``hub identity review``: a steward's decision moves the record's licence to the right holder as a new
signed version (seen through ``/v1/holders/{code}/licenses``), is in the audit chain and the outbox, and
is undone by a later split; merging two persons needs a second steward. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from e_license_store.service import LicenseService
from hub.db import make_engine, session_scope
from hub.models import OutboxEvent
from hub.settings import get_settings
from identity.matching_review import history
from identity.matching_tables import SOURCE_DELETED, IdentityReviewQueue
from identity.tables import IdentityMerge, IdentityPerson, IdentitySourceRecord
from recognition import audit
from recognition import identity_review as decisions
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.consumers import add_consumer
from recognition.directory import LicenseDirectory
from recognition.identity_review_cli import app
from recognition.tables import AuditEntry, ReviewDecision
from tests.recognition.rec_helpers import auth
from tests.recognition.review_helpers import CANDIDATE, DAMAGED, NAME, RUNNER_UP, licence_env, seed_review

runner = CliRunner()


def _hub(steward: str, *args: str) -> Any:
    return runner.invoke(app, ["review", *args], env={"LOGNAME": steward, "USER": steward})


def _holder_licences(engine: Any, service: LicenseService, code: str) -> dict[str, int]:
    """licence id → version, as ``GET /v1/holders/{code}/licenses`` answers a reader of every type."""
    with session_scope(engine) as s:
        token = add_consumer(s, f"reader-{uuid.uuid4().hex[:12]}", ["licenses:read:*", "personal:read"])[1]
    settings = RecognitionSettings(api_key_cache_seconds=0.0)
    api = create_app(get_settings(), engine=engine, directory=LicenseDirectory(service.store, service.signer),
                     config=settings)  # fmt: skip
    with TestClient(api) as client:
        answer = client.get(f"/v1/holders/{code}/licenses", headers=auth(token))
    assert answer.status_code == 200, answer.text
    return {item["license_id"]: item["version"] for item in answer.json()["items"]}


def _audited(engine: Any, action: str = "identity_review") -> list[AuditEntry]:
    with session_scope(engine) as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)))
        s.expunge_all()
    return rows


def _events(engine: Any, event_type: str) -> list[OutboxEvent]:
    with session_scope(engine) as s:
        rows = list(s.scalars(select(OutboxEvent).where(OutboxEvent.event_type == event_type)))
        s.expunge_all()
    return rows


def _accept_then_split(url: str, service: LicenseService) -> None:
    engine = make_engine(url)
    review_id, licence = seed_review(engine, service)

    listed = _hub("alice", "list")
    assert listed.exit_code == 0, listed.output
    (row,) = [json.loads(line) for line in listed.output.splitlines()]
    assert row["id"] == review_id and row["age_seconds"] >= 0 and row["candidate"] == "330322********1234"

    shown = json.loads(_hub("alice", "show", str(review_id)).output)
    assert [c["code"] for c in shown["candidates"]] == ["330322********1234", "330322********1242"]
    assert shown["candidates"][0]["name"] == "张**" and shown["incoming"]["details"]["name"] == "张**"
    assert shown["incoming"]["licences"][0]["license_id"] == licence
    assert shown["incoming"]["licences"][0]["holder"] == "330322********1230"
    unmasked = json.loads(_hub("alice", "show", str(review_id), "--unmasked").output)
    assert unmasked["candidates"][0]["code"] == CANDIDATE and unmasked["candidates"][0]["name"] == NAME

    # no reason, no decision (refused and audited)
    refused = _hub("alice", "accept", str(review_id), "--reason", "  ")
    assert refused.exit_code == 1 and "reason_required" in refused.output
    assert _audited(engine)[-1].outcome == "refused"

    accepted = _hub("alice", "accept", str(review_id), "--reason", "same person: birth date and address agree")
    assert accepted.exit_code == 0, accepted.output
    out = json.loads(accepted.output)
    assert out["decision"] == "linked" and out["status"] == "linked"
    assert out["licences"] == [{"license_id": licence, "holder": "330322********1234", "version": 2, "skipped": None}]
    # the licence is the candidate's now: a new signed version, found under the candidate's code
    assert _holder_licences(engine, service, CANDIDATE) == {licence: 2}
    assert licence not in _holder_licences(engine, service, DAMAGED)
    with session_scope(engine) as s:
        (link,) = s.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.source_key == "k1")).all()
        assert link.canonical_code == CANDIDATE and link.method == "probabilistic_review"
    # in the audit chain (who and why, nothing personal), the chain intact
    entry = _audited(engine)[-1]
    assert entry.consumer == "steward:alice" and entry.outcome == "ok" and entry.subject == str(review_id)
    assert entry.detail["decision"] == "linked" and entry.detail["licences"] == [licence]
    assert "birth date" in entry.detail["reason"] and CANDIDATE not in json.dumps(entry.detail)
    assert audit.verify(engine).ok
    # through the outbox: the identity event (no resident id in its subject or key) and the licence's
    (merged,) = _events(engine, "identity.merged")
    assert CANDIDATE not in merged.subject and CANDIDATE not in merged.idempotency_key
    assert any(e.subject == licence for e in _events(engine, "license.amended"))

    # a decided item is not decided again; a split undoes it by a later decision
    again = _hub("bob", "reject", str(review_id), "--reason", "changed my mind")
    assert again.exit_code == 1 and "review_not_open" in again.output
    split = _hub("bob", "split", str(review_id), "--reason", "a different person after all")
    assert split.exit_code == 0, split.output
    assert json.loads(split.output)["licences"][0]["version"] == 3
    assert _holder_licences(engine, service, DAMAGED) == {licence: 3}
    assert licence not in _holder_licences(engine, service, CANDIDATE)
    assert len(_events(engine, "identity.split")) == 1
    with session_scope(engine) as s:
        (link,) = s.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.source_key == "k1")).all()
        assert link.unlinked_at is not None  # kept on record, no longer in force
        assert [r.action for r in s.scalars(select(ReviewDecision).order_by(ReviewDecision.id))] == ["linked", "split"]
        assert history(s, review_id) == [("enqueued", "matcher"), ("linked", "steward:alice"), ("split", "steward:bob")]
    engine.dispose()


def test_cli_decision_moves_the_licence_sqlite(
    hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _accept_then_split(hub_db_url, licence_env(tmp_path, monkeypatch))


@pytest.mark.postgres
def test_cli_decision_moves_the_licence_postgres(
    pg_hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _accept_then_split(pg_hub_db_url, licence_env(tmp_path, monkeypatch))


def _four_eyes(url: str, service: LicenseService) -> None:
    engine = make_engine(url)
    # the record already belongs to RUNNER_UP: accepting CANDIDATE merges two persons
    review_id, licence = seed_review(engine, service, "k2", linked_to=RUNNER_UP)
    first = json.loads(_hub("alice", "accept", str(review_id), "--reason", "one person, two ids").output)
    assert first["decision"] == "merge_requested" and first["awaiting_second_steward"] is True
    assert first["status"] == "open" and first["licences"] == []
    assert _holder_licences(engine, service, RUNNER_UP) == {licence: 1}  # nothing moved yet
    same = _hub("alice", "accept", str(review_id), "--reason", "approving my own request")
    assert same.exit_code == 1 and "second_steward_required" in same.output
    assert _audited(engine)[-1].outcome == "refused" and _audited(engine)[-1].consumer == "steward:alice"
    shown = json.loads(_hub("bob", "show", str(review_id)).output)
    assert shown["pending_merge"]["requested_by"] == "steward:alice"

    approved = _hub("bob", "accept", str(review_id), "--reason", "checked: the same person")
    assert approved.exit_code == 0, approved.output
    out = json.loads(approved.output)
    assert out["decision"] == "merged" and out["licences"][0]["version"] == 2
    assert _holder_licences(engine, service, CANDIDATE) == {licence: 2}
    with session_scope(engine) as s:
        assert s.get(IdentityPerson, RUNNER_UP).merged_into == CANDIDATE  # type: ignore[union-attr]
        (record,) = s.scalars(select(IdentityMerge)).all()
        assert record.actor == "steward:bob"
    assert [e.idempotency_key for e in _events(engine, "identity.merged")] == [f"identity.merged:merge:{record.id}"]

    # undo: the merge is split, the licence goes back to the identity it left
    split = _hub("carol", "split", str(review_id), "--reason", "twins")
    assert split.exit_code == 0, split.output
    assert _holder_licences(engine, service, RUNNER_UP) == {licence: 3}
    with session_scope(engine) as s:
        assert s.get(IdentityPerson, RUNNER_UP).merged_into is None  # type: ignore[union-attr]
        rows = s.scalars(select(ReviewDecision).order_by(ReviewDecision.id)).all()
        assert [(r.action, r.actor) for r in rows] == [
            ("merge_requested", "steward:alice"), ("merged", "steward:bob"), ("split", "steward:carol"),
        ]  # fmt: skip
    assert len(_events(engine, "identity.split")) == 1
    engine.dispose()


def test_merging_two_persons_needs_a_second_steward_sqlite(
    hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _four_eyes(hub_db_url, licence_env(tmp_path, monkeypatch))


@pytest.mark.postgres
def test_merging_two_persons_needs_a_second_steward_postgres(
    pg_hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _four_eyes(pg_hub_db_url, licence_env(tmp_path, monkeypatch))


def test_reject_keeps_the_record_and_its_licence(
    hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = licence_env(tmp_path, monkeypatch)
    engine = make_engine(hub_db_url)
    review_id, licence = seed_review(engine, service, "k3")
    with session_scope(engine) as s:
        with pytest.raises(decisions.DecisionError) as refused:
            decisions.accept(s, review_id, actor="steward:alice", reason="x", candidate="330322198001019999")
        assert refused.value.code == "not_a_candidate"
        with pytest.raises(decisions.DecisionError) as missing:
            decisions.accept(s, 10_000, actor="steward:alice", reason="x")
        assert (missing.value.status, missing.value.code) == (404, "review_not_found")
    out = _hub("alice", "reject", str(review_id), "--reason", "different people")
    assert out.exit_code == 0 and json.loads(out.output)["status"] == "rejected"
    assert _holder_licences(engine, service, DAMAGED) == {licence: 1}
    split = _hub("alice", "split", str(review_id), "--reason", "nothing linked")
    assert split.exit_code == 1 and "nothing_to_split" in split.output
    engine.dispose()


def test_an_item_of_a_record_deleted_at_its_department_is_closed_not_linked(
    hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An item the deletions put in the queue (reason ``source_deleted``): accepting would link a record
    its department no longer holds, so it is refused (and audited through the CLI); reject closes the
    item and leaves the licence as it was."""
    service = licence_env(tmp_path, monkeypatch)
    engine = make_engine(hub_db_url)
    review_id, licence = seed_review(engine, service, "k9")
    with session_scope(engine) as s:
        item = s.get(IdentityReviewQueue, review_id)
        assert item is not None
        item.reason = SOURCE_DELETED
    with session_scope(engine) as s:
        with pytest.raises(decisions.DecisionError) as refused:
            decisions.accept(s, review_id, actor="steward:alice", reason="relink")
        assert (refused.value.status, refused.value.code) == (409, "source_deleted_item")
    out = _hub("alice", "accept", str(review_id), "--reason", "relink")
    assert out.exit_code == 1 and "source_deleted_item" in out.output
    assert any(e.outcome != "ok" for e in _audited(engine))  # the refusal is in the audit
    with session_scope(engine) as s:
        assert s.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.source_key == "k9")).all() == []
    closed = _hub("alice", "reject", str(review_id), "--reason", "the department deleted it")
    assert closed.exit_code == 0 and json.loads(closed.output)["status"] == "rejected"
    assert _holder_licences(engine, service, DAMAGED) == {licence: 1}
    engine.dispose()
