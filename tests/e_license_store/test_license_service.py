"""Issuing and the lifecycle: signed versions in the store, index and outbox in one transaction."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from e_license_store.index import (
    content_fingerprint,
    get_license,
    legacy_content_fingerprint,
    license_versions,
    licenses_by_holder,
    reindex,
)
from e_license_store.model import object_key, parse_envelope
from e_license_store.service import InvalidDraft, InvalidTransition, LicenseService
from e_license_store.store.local import LocalStore
from e_license_store.tables import LicenseIndexEntry
from hub.models import OutboxEvent
from mappings.canonical.models import ApprovalResult, SourceRef
from tests.e_license_store.conftest import USCC, business_draft, source


def _events(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with sessions() as s:
        return [(e.event_type, e.idempotency_key) for e in s.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]


def test_issue_stores_a_signed_version_indexes_it_and_emits_one_event(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    issued = service.issue(business_draft(), source())
    assert issued.created and issued.version == 1 and issued.status == "valid"
    env = parse_envelope(local_store.get(issued.object_key))
    assert env.document.license.license_id == issued.license_id
    assert env.document.license.issuer_name == "市场监督管理局"  # catalogue default
    assert service.signer.verify(env.signature, env.document.canonical())
    with sessions() as s:
        rows = licenses_by_holder(s, USCC)
        assert [r.license_id for r in rows] == [issued.license_id]
        assert rows[0].content_sha256 == issued.content_sha256
    assert _events(sessions) == [("license.issued", f"license.issued:{issued.license_id}:v1")]


def test_reissuing_the_same_source_twice_yields_one_version(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    first = service.issue(business_draft(), source())
    # a later run of the same import: new run id and source version, same content
    again = service.issue(
        business_draft(), source(version="2016-06-01T00:00:00+08:00").model_copy(update={"run_id": "run-2"})
    )
    assert not again.created
    assert (again.license_id, again.version, again.content_sha256) == (first.license_id, 1, first.content_sha256)
    assert list(local_store.list_keys(f"licenses/{first.license_id}/")) == [object_key(first.license_id, 1)]
    assert len(_events(sessions)) == 1


def test_a_changed_source_record_becomes_an_amendment(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    first = service.issue(business_draft(), source())
    draft = business_draft(surface={"enterprise_name": "温州洞头海景餐饮有限公司", "address": "洞头区新址1号"})
    second = service.issue(draft, source())
    assert second.created and second.version == 2 and second.license_id == first.license_id
    old = parse_envelope(local_store.get(object_key(first.license_id, 1))).document
    new = parse_envelope(local_store.get(object_key(first.license_id, 2))).document
    assert old.license.surface["address"].startswith("浙江省")  # the old version is kept as it was
    assert new.transition == "amended" and new.license.previous_version == 1
    assert [e[0] for e in _events(sessions)] == ["license.issued", "license.amended"]


def test_lifecycle_suspend_reinstate_revoke_never_overwrites(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    lid = service.issue(business_draft(), source()).license_id
    service.amend(lid, {"license_number": "330322000099999"}, reason="register number corrected")
    service.suspend(lid, "under investigation")
    with pytest.raises(InvalidTransition):
        service.suspend(lid, "twice")
    service.reinstate(lid, "investigation closed")
    revoked = service.revoke(lid, "licence revoked by court order")
    assert revoked.version == 5 and revoked.status == "revoked"
    with pytest.raises(InvalidTransition):
        service.amend(lid, {"license_number": "x"})
    with sessions() as s:
        history = [(v.version, v.transition, v.status) for v in license_versions(s, lid)]
        assert get_license(s, lid).status == "revoked"  # type: ignore[union-attr]
        assert licenses_by_holder(s, USCC, status="valid") == []
    assert history == [
        (1, "issued", "valid"),
        (2, "amended", "valid"),
        (3, "suspended", "suspended"),
        (4, "reinstated", "valid"),
        (5, "revoked", "revoked"),
    ]
    assert len(list(local_store.list_keys(f"licenses/{lid}/"))) == 5
    assert parse_envelope(local_store.get(object_key(lid, 5))).document.reason == "licence revoked by court order"
    assert [e[0] for e in _events(sessions)] == [
        "license.issued",
        "license.amended",
        "license.suspended",
        "license.reinstated",
        "license.revoked",
    ]


def test_expire_due_marks_only_licences_past_validity(service: LicenseService, sessions: sessionmaker[Session]) -> None:
    old = service.issue(business_draft(valid_until=dt.date(2020, 1, 1)), source("a")).license_id
    current = service.issue(business_draft(valid_until=dt.date(2030, 1, 1)), source("b")).license_id
    forever = service.issue(business_draft(), source("c")).license_id
    expired = service.expire_due(dt.date(2026, 11, 22))
    assert [e.license_id for e in expired] == [old]
    assert service.expire_due(dt.date(2026, 11, 22)) == []  # idempotent
    with sessions() as s:
        assert {lid: get_license(s, lid).status for lid in (old, current, forever)} == {  # type: ignore[union-attr]
            old: "expired",
            current: "valid",
            forever: "valid",
        }
        assert [r.license_id for r in licenses_by_holder(s, USCC, valid_on=dt.date(2026, 11, 22))] == sorted(
            [current, forever]
        )


def test_approval_result_is_issued_with_default_validity_and_approval_event(
    service: LicenseService, sessions: sessionmaker[Session]
) -> None:
    approval = ApprovalResult(
        approval_type_code="land_use_pre_review",
        approval_no="浙自然资预审〔2016〕12号",
        project_name="洞头港区码头",
        applicant_name="温州港务有限公司",
        applicant_code=USCC,
        issuer_name="温州市自然资源局",
        issuer_code="330300",
        opinion="原则同意",
        conclusion="approved",
        issue_date=dt.date(2016, 3, 1),
        land_area_m2=12000.5,
        source=SourceRef(department="land", dataset="exchange_packages", source_key="AR-1", source_version="1"),
    )
    issued = service.issue_approval(approval)
    # a division code is no issuer: the authority the catalogue registers for 3101 issues it
    assert issued.license_id.startswith("3101-113303220025679671-")
    own = approval.model_copy(
        update={
            "issuer_code": "11330300002567983T",
            "approval_no": "浙自然资预审〔2016〕13号",
            "source": approval.source.model_copy(update={"source_key": "AR-2"}),
        }
    )
    assert service.issue_approval(own).license_id.startswith("3101-11330300002567983T-")  # the city bureau's own
    with sessions() as s:
        row = get_license(s, issued.license_id)
    assert row is not None and row.valid_until == dt.date(2019, 3, 1)
    assert row.license_type_name == "建设项目用地预审意见"
    assert _events(sessions)[0][0] == "approval.issued"


def test_default_validity_comes_from_the_catalogue(service: LicenseService) -> None:
    approval_draft = business_draft(
        license_type_code="3101",
        surface={"project_name": "p", "conclusion": "approved"},
        valid_until=None,
        issue_date=dt.date(2016, 2, 29),
    )
    lic = service.license_for(approval_draft, source())
    assert lic.valid_until == dt.date(2019, 2, 28)


def test_drafts_that_do_not_fit_their_type_are_refused(service: LicenseService) -> None:
    with pytest.raises(InvalidDraft, match="required"):
        service.issue(business_draft(surface={"address": "x"}), source())
    with pytest.raises(InvalidDraft, match="not in the catalogue"):
        service.issue(business_draft(surface={"enterprise_name": "x", "shoe_size": 42}), source())
    with pytest.raises(InvalidDraft, match="held by"):
        service.issue(business_draft(holder_kind="person"), source())


def test_version_stored_but_not_indexed_is_recovered_not_duplicated(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    """A crash after the store write and before the commit: the next call picks the version up."""
    lid = service.issue(business_draft(), source()).license_id

    class Crash(RuntimeError):
        pass

    def crashing_emit(*_a: object, **_k: object) -> None:
        raise Crash

    import e_license_store.service as svc

    original = svc.emit
    svc.emit = crashing_emit  # type: ignore[assignment]
    try:
        with pytest.raises(Crash):
            service.suspend(lid, "first try")
    finally:
        svc.emit = original
    with sessions() as s:
        assert get_license(s, lid).version == 1  # type: ignore[union-attr]
    # the suspended version is in the store; the next transition sees it and builds on it
    reinstated = service.reinstate(lid, "cleared")
    assert reinstated.version == 3
    with sessions() as s:
        assert [v.transition for v in license_versions(s, lid)] == ["issued", "suspended", "reinstated"]


def test_issue_batch_matches_issuing_one_by_one(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    standing = service.issue(business_draft(), source("s0"))
    changed_before = service.issue(business_draft(), source("s1"))
    items = [(business_draft(license_number=f"33032200000{i:04d}"), source(f"n{i}")) for i in range(6)]
    items.append((business_draft(), source("s0")))  # already issued, same content
    items.append((business_draft(license_number="330322000077777"), source("s1")))  # changed: amendment
    items.append((business_draft(license_number="330322000000000"), source("n0")))  # n0 again in the same batch
    out = service.issue_batch(items, concurrency=3)
    assert len(out) == len(items)
    assert all(r.created and r.version == 1 for r in out[:6])
    assert (out[6].created, out[6].version, out[6].content_sha256) == (False, 1, standing.content_sha256)
    assert (out[7].license_id, out[7].version) == (changed_before.license_id, 2)
    assert out[8].license_id == out[0].license_id and not out[8].created
    again = service.issue_batch(items[:6])
    assert [(r.license_id, r.version, r.created) for r in again] == [(r.license_id, 1, False) for r in out[:6]]
    events = _events(sessions)
    assert sorted(e[0] for e in events) == ["license.amended"] + ["license.issued"] * 8
    assert len(list(local_store.list_keys("licenses/"))) == 9


def test_emit_many_skips_keys_already_in_the_outbox_or_repeated(sessions: sessionmaker[Session]) -> None:
    from hub.outbox import emit, emit_many

    with sessions() as s:
        emit(s, "license.issued", "L1", {"n": 1}, "k1")
        added = emit_many(
            s,
            [
                {"event_type": "license.issued", "subject": "L1", "payload": {"n": 1}, "idempotency_key": "k1"},
                {
                    "event_type": "license.issued",
                    "subject": "L2",
                    "payload": {"n": 2},
                    "idempotency_key": "k2",
                    "holder_code": USCC,
                },
                {"event_type": "license.issued", "subject": "L2", "payload": {"n": 2}, "idempotency_key": "k2"},
            ],
        )
        s.commit()
    assert added == 1
    with sessions() as s:
        rows = s.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        assert [(r.idempotency_key, r.holder_code) for r in rows] == [("k1", None), ("k2", USCC)]
        assert all(r.created_at is not None for r in rows)


def test_licenses_by_holder_filters_and_pages(service: LicenseService, sessions: sessionmaker[Session]) -> None:
    import datetime as _dt

    ids = [
        service.issue(business_draft(issue_date=_dt.date(2016, 1, 1 + i)), source(f"p{i}")).license_id for i in range(5)
    ]
    tax_draft = business_draft(license_type_code="1102", surface={"taxpayer_name": "x"})
    tax = service.issue(tax_draft, source("t")).license_id
    with sessions() as s:
        newest_first = [r.license_id for r in licenses_by_holder(s, USCC, type_codes=["1101"])]
        assert newest_first == list(reversed(ids))
        page = [r.license_id for r in licenses_by_holder(s, USCC, type_codes=["1101"], limit=2, offset=1)]
        assert page == newest_first[1:3]
        assert [r.license_id for r in licenses_by_holder(s, USCC, limit=2)] == [tax, ids[-1]]  # 2016-05-04 first
        assert [r.license_id for r in licenses_by_holder(s, USCC, type_codes=["1102"], status="valid")] == [tax]
        assert licenses_by_holder(s, "91330322MA0000000X") == []


def test_issue_batch_with_an_invalid_draft_writes_nothing(service: LicenseService, local_store: LocalStore) -> None:
    items = [(business_draft(), source("ok")), (business_draft(surface={"address": "x"}), source("bad"))]
    with pytest.raises(InvalidDraft):
        service.issue_batch(items)
    assert list(local_store.list_keys("licenses/")) == []


def test_default_service_makes_a_key_on_first_use_under_hub_home(
    hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from e_license_store.service import default_service
    from hub.settings import get_settings, reset_settings

    monkeypatch.delenv("HUB_SIGNING_KEY_DIR", raising=False)
    monkeypatch.setenv("HUB_STORE_URL", f"file://{tmp_path / 'store'}")
    reset_settings()
    service = default_service(create_keys=True)
    key_dir = get_settings().home / "keys"
    assert (key_dir / "active").read_text().strip() == service.signer.active.key_id  # type: ignore[union-attr]
    issued = service.issue(business_draft(), source())
    assert issued.key_id.startswith("sm2-")
    assert default_service().signer.active.key_id == issued.key_id  # type: ignore[union-attr]


def test_issue_many_keeps_going_past_bad_items(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    """What the publish step needs: one invalid draft or one revoked licence never stops the batch."""
    revoked = service.issue(business_draft(), source("r1"))
    service.revoke(revoked.license_id, "吊销")
    standing = service.issue(business_draft(), source("s0"))
    items = [(business_draft(license_number=f"33032200000{i:04d}"), source(f"n{i}")) for i in range(3)]
    items.append((business_draft(surface={"address": "x"}), source("bad")))  # invalid: no enterprise name
    items.append((business_draft(license_number="330322000099999"), source("r1")))  # change to a revoked one
    items.append((business_draft(), source("s0")))  # unchanged
    items.append((business_draft(license_number="330322000088888"), source("s0")))  # then changed, same batch
    out = service.issue_many(items, concurrency=2)
    assert len(out) == len(items)
    assert all(not isinstance(r, Exception) and r.created and r.version == 1 for r in out[:3])
    assert isinstance(out[3], InvalidDraft) and isinstance(out[4], InvalidTransition)
    assert not isinstance(out[5], Exception) and not out[5].created and out[5].version == standing.version
    assert not isinstance(out[6], Exception) and out[6].created and out[6].version == 2
    events = sorted(e[0] for e in _events(sessions))
    assert events == ["license.amended"] + ["license.issued"] * 5 + ["license.revoked"]


def test_whole_numbers_have_one_fingerprint_in_a_draft_and_in_the_stored_document(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    """A float with a whole value is ``12000.0`` in a draft and ``12000`` in the stored (RFC 8785)
    document: the fingerprints agree, and an index written in the older form (the draft's
    ``json.dumps``) still says "unchanged", so neither re-indexing nor an old index amends a
    licence to itself; a real change of the number still amends."""
    draft = business_draft(
        license_type_code="3101",
        issuer_code="113303220025679671",
        license_number="预审〔2022〕17号",
        surface={"project_name": "仓储项目", "conclusion": "同意", "land_area_m2": 12000.0},
    )
    first = service.issue(draft, source())
    stored = parse_envelope(local_store.get(first.object_key)).document
    assert stored.license.surface["land_area_m2"] == 12000 and isinstance(stored.license.surface["land_area_m2"], int)
    fresh = service._document(service.license_for(draft, source()), stored.transition, None)
    assert content_fingerprint(stored) == content_fingerprint(fresh)
    assert legacy_content_fingerprint(stored) != legacy_content_fingerprint(fresh)  # the old form differed
    with sessions() as s:  # the index rebuilt from the store, then an index from before the change
        reindex(s, local_store, license_ids=[first.license_id])
        s.commit()
    assert service.issue(draft, source()).version == 1
    assert service.issue_many([(draft, source())])[0].version == 1  # type: ignore[union-attr]
    with sessions() as s:
        entry = s.get(LicenseIndexEntry, first.license_id)
        assert entry is not None
        entry.content_fingerprint = legacy_content_fingerprint(fresh)
        s.commit()
    assert service.issue(draft, source()).version == 1
    assert service.issue_many([(draft, source())])[0].version == 1  # type: ignore[union-attr]
    changed = draft.model_copy(update={"surface": {**draft.surface, "land_area_m2": 12500.0}})
    assert service.issue(changed, source()).version == 2
    assert [e[0] for e in _events(sessions)] == ["approval.issued", "approval.amended"]


def test_move_many_makes_the_one_by_one_moves_in_one_batch(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moves stored in parallel and indexed together; a repeat, a status that forbids the move, an unknown
    licence and a version already in the store (a crashed writer's) come out as one by one."""
    from e_license_store.batch_moves import moved_license
    from e_license_store.model import Transition
    from e_license_store.service import LicenseNotFound
    from mappings.canonical.models import LicenseStatus

    ids = [service.issue(business_draft(license_number=f"33032200000{i:04d}"), source(f"m{i}")).license_id
           for i in range(5)]  # fmt: skip
    crashed = parse_envelope(local_store.get(object_key(ids[4], 1))).document.license
    service._store_version(moved_license(crashed, 1, LicenseStatus.valid, Transition.suspended), Transition.suspended,
                           "stored, never indexed")  # fmt: skip
    monkeypatch.setattr(local_store, "write_concurrency", 3)
    counted: list[int] = []
    service.on_indexed = lambda _session, versions: counted.append(len(versions))
    out = service.move_many([
        (ids[0], Transition.suspended, "source status abnormal"),
        (ids[1], Transition.revoked, "source status revoked"),
        (ids[2], Transition.revoked, "source status cancelled"),
        (ids[0], Transition.suspended, "twice"),
        (ids[3], Transition.reinstated, "not suspended"),
        ("no-such-licence", Transition.revoked, "unknown"),
        (ids[4], Transition.revoked, "source status revoked"),
    ])  # fmt: skip
    assert [(r.version, r.status, r.created) for r in out[:3]] == [
        (2, "suspended", True), (2, "revoked", True), (2, "revoked", True)
    ]  # fmt: skip
    assert isinstance(out[3], InvalidTransition) and isinstance(out[4], InvalidTransition)
    assert isinstance(out[5], LicenseNotFound)
    assert (out[6].version, out[6].status) == (3, "revoked")  # type: ignore[union-attr]
    assert counted == [3, 1, 1]  # the batch in one transaction; the recovered version and the move after it
    with sessions() as s:
        assert [get_license(s, i).status for i in ids] == ["suspended", "revoked", "revoked", "valid", "revoked"]  # type: ignore[union-attr]
        assert [v.transition for v in license_versions(s, ids[4])] == ["issued", "suspended", "revoked"]
        assert get_license(s, ids[1]).object_key == object_key(ids[1], 2)  # type: ignore[union-attr]
    document = parse_envelope(local_store.get(object_key(ids[2], 2))).document
    assert (document.transition, document.reason, document.license.previous_version) == (
        "revoked", "source status cancelled", 1
    )  # fmt: skip
    moved_events = sorted(k for t, k in _events(sessions) if t != "license.issued")
    assert moved_events == sorted([f"license.suspended:{ids[0]}:v2", f"license.revoked:{ids[1]}:v2",
                                   f"license.revoked:{ids[2]}:v2", f"license.suspended:{ids[4]}:v2",
                                   f"license.revoked:{ids[4]}:v3"])  # fmt: skip
