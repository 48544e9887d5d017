"""Source records deleted at their department: links ended, golden recomputed, items for review."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.models import utcnow
from identity import golden
from identity.matching_tables import MATCH_REVIEW, SOURCE_DELETED, IdentityReviewEvent, IdentityReviewQueue
from identity.resolve import resolve_batch
from identity.source_deletions import active_links, end_links, licences_in_review, open_source_deletions
from identity.tables import IdentityPerson, IdentityRelation, IdentitySourceRecord
from tests.identity.test_resolve import P1, P2


def _seed(session: Session) -> None:
    batch = pd.DataFrame(
        [
            {"_source_key": "a", "_source_version": "1", "resident_id": P1, "name": "张三", "address": "洞头区1号"},
            {"_source_key": "b", "_source_version": "1", "resident_id": P2, "name": "李四"},
        ]
    )
    resolve_batch(session, batch, "person", "public_security", "persons")
    session.add(IdentityRelation(entity_kind="person", canonical_code=P1, role="employer", related_kind="enterprise",
                                 presented_code="91330322MA2C8XYZ1K", department="public_security",
                                 dataset="persons", source_key="a"))  # fmt: skip
    session.commit()


def test_ending_a_deleted_records_link_recomputes_the_golden_record_and_opens_a_review(session: Session) -> None:
    _seed(session)
    # a grey-zone match item decided earlier for the same record and identity: the queue holds one
    # item per record and identity, so it is opened again with the new reason
    earlier = IdentityReviewQueue(entity_kind="person", department="public_security", dataset="persons",
                                  incoming_key="a", candidate_code=P1, match_probability=0.7, status="rejected",
                                  created_at=utcnow() - dt.timedelta(days=3))  # fmt: skip
    session.add(earlier)
    session.commit()
    assert earlier.reason == MATCH_REVIEW  # what every item was before deletions acted

    links = active_links(session, "public_security", "persons", ["a", "zz"])
    assert [link.source_key for link in links] == ["a"]
    ended = end_links(session, links, deleted_versions={"a": "deleted@x"}, license_ids={links[0].id: ["L-2", "L-1"]},
                      run_id="run-2")  # fmt: skip
    session.commit()

    assert [(e.source_key, e.canonical_code, e.license_ids) for e in ended] == [("a", P1, ["L-1", "L-2"])]
    assert active_links(session, "public_security", "persons", ["a"]) == []
    link = IdentitySourceRecord
    assert session.scalars(select(link).where(link.source_key == "b", link.unlinked_at.is_(None))).one()
    person = session.get(IdentityPerson, P1)
    assert person is not None and person.name is None and person.attributes == {}
    assert {(h.attribute, h.cause) for h in golden.history(session, "person", P1)} >= {("name", "source_deleted")}
    relation = session.scalars(select(IdentityRelation).where(IdentityRelation.source_key == "a")).one()
    assert relation.unlinked_at is not None

    item = session.get(IdentityReviewQueue, ended[0].review_id)
    assert item is not None and item.id == earlier.id
    assert (item.reason, item.status, item.decided_at, item.run_id) == (SOURCE_DELETED, "open", None, "run-2")
    assert item.details is not None
    earlier_said = item.details.pop("earlier")
    assert item.details == {"reason": SOURCE_DELETED, "link_id": links[0].id, "link_method": links[0].method,
                            "source_version": "1", "deleted_version": "deleted@x",
                            "license_ids": ["L-1", "L-2"]}  # fmt: skip
    said = (earlier_said["reason"], earlier_said["status"], earlier_said["match_probability"])
    assert said == (MATCH_REVIEW, "rejected", 0.7)
    actions = session.scalars(select(IdentityReviewEvent.action).where(IdentityReviewEvent.review_id == item.id)).all()
    assert list(actions) == ["reopened"]
    assert [i.id for i in open_source_deletions(session)] == [item.id]
    assert open_source_deletions(session, "commerce") == []
    assert licences_in_review(session) == {"L-1": item.id, "L-2": item.id}
    assert licences_in_review(session, ["L-2", "L-9"]) == {"L-2": item.id}

    # again: no active link is left, nothing changes
    assert end_links(session, active_links(session, "public_security", "persons", ["a"]), deleted_versions={},
                     license_ids={}, run_id="run-3") == []  # fmt: skip
