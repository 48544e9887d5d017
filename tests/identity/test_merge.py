"""Merge, split and unlink keep history and emit their events."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.models import OutboxEvent
from identity import golden
from identity.master import resolve_code
from identity.merge import MergeError, merge, split, unlink
from identity.resolve import resolve_batch
from identity.tables import IdentityPerson, IdentitySourceRecord
from tests.identity.test_resolve import P1, P2


def _seed(session: Session) -> None:
    batch = pd.DataFrame(
        [
            {
                "_source_key": "a",
                "_source_version": "1",
                "resident_id": P1,
                "name": "张三",
                "address": "浙江省温州市洞头区1号",
            },
            {"_source_key": "b", "_source_version": "1", "resident_id": P2, "name": "张叁", "phone": "13812345678"},
        ]
    )
    resolve_batch(session, batch, "person", "public_security", "persons")
    session.commit()


def _active(session: Session, code: str) -> list[str]:
    return sorted(
        s.source_key
        for s in session.scalars(
            select(IdentitySourceRecord).where(
                IdentitySourceRecord.canonical_code == code, IdentitySourceRecord.unlinked_at.is_(None)
            )
        )
    )


def test_merge_then_split_restores_both(session: Session) -> None:
    _seed(session)
    record = merge(session, "person", P2, P1, actor="reviewer-1", reason="same person")
    session.commit()
    assert _active(session, P1) == ["a", "b"] and _active(session, P2) == []
    p1 = session.get(IdentityPerson, P1)
    assert p1 is not None and p1.attributes["phone"] == "13812345678"
    # the merged-away code now resolves to the survivor
    assert resolve_code(session, P2) == P1
    with pytest.raises(MergeError):
        merge(session, "person", P2, P1, actor="reviewer-1")

    split(session, record.id, actor="reviewer-2", reason="twins")
    session.commit()
    assert _active(session, P1) == ["a"] and _active(session, P2) == ["b"]
    assert resolve_code(session, P2) == P2
    p1 = session.get(IdentityPerson, P1)
    assert p1 is not None and "phone" not in p1.attributes
    changes = [(h.attribute, h.cause) for h in golden.history(session, "person", P1)]
    assert ("phone", "merge") in changes and ("phone", "split") in changes
    kinds = [e.event_type for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]
    assert kinds == ["identity.merged", "identity.split"]
    # the merged-away resident id never appears unmasked in an event
    assert all(P2 not in str(e.payload) for e in session.scalars(select(OutboxEvent)))
    with pytest.raises(MergeError):
        split(session, record.id, actor="reviewer-2")


def test_unlink_one_source_record(session: Session) -> None:
    _seed(session)
    unlink(session, "public_security", "persons", "a", actor="operator")
    session.commit()
    assert _active(session, P1) == []
    p1 = session.get(IdentityPerson, P1)
    assert p1 is not None and p1.name is None and p1.attributes == {}
    assert [h.cause for h in golden.history(session, "person", P1)][-1] == "unlink"
    with pytest.raises(MergeError):
        unlink(session, "public_security", "persons", "a", actor="operator")


def test_identity_merged_event_carries_no_resident_id(session: Session) -> None:
    """Finding 2: an identity event's subject and idempotency key (hence the delivery's key and the
    ``webhook-id``) carry an opaque reference, never the resident id nor a plain hash of it."""
    import hashlib

    from hub.pseudonyms import is_opaque_ref, opaque_ref
    from tests.identity.test_resolve import LEGACY_P2, _person_batch

    _seed(session)
    resolve_batch(session, _person_batch(), "person", "public_security", "persons")  # P2's 15-digit card merges
    merge(session, "person", P2, P1, actor="reviewer-1", reason="same person")
    session.commit()
    events = list(session.scalars(select(OutboxEvent).where(OutboxEvent.event_type.like("identity.%"))))
    assert {e.event_type for e in events} == {"identity.merged"} and len(events) == 2
    codes = {P1, P2, LEGACY_P2}
    plain_hashes = {hashlib.sha256(c.encode()).hexdigest()[:16] for c in codes}
    for e in events:
        identifiers = f"{e.subject} {e.idempotency_key}"
        assert not any(code in identifiers for code in codes), identifiers
        assert not any(h in identifiers for h in plain_hashes)
        assert is_opaque_ref(e.subject) and e.subject in (opaque_ref(P1), opaque_ref(P2))
        assert e.region_code == P1[:6]  # the holder's region, for region-filtered subscriptions
    # deterministic: the same batch again announces nothing new (the keys are stable)
    resolve_batch(session, _person_batch(), "person", "public_security", "persons")
    session.commit()
    assert len(list(session.scalars(select(OutboxEvent).where(OutboxEvent.event_type.like("identity.%"))))) == 2
