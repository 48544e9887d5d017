"""A new identity's only link stores ``as_golden`` instead of its values (they are the golden
record's) — and every path that changes that golden record writes the link's values out first:
a later link, an unlink, a merge and split, a record that moves to another identity."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from identity import golden
from identity.golden_sources import AS_GOLDEN
from identity.merge import merge, split, unlink
from identity.resolve import link_batch
from identity.tables import IdentityGoldenHistory, IdentityPerson, IdentitySourceRecord
from tests.identity.test_resolve_bulk import rid

A, B, C, D = rid(1), rid(2), rid(3), rid(4)


def stored(session: Session) -> dict[tuple[str, str], Any]:
    """(department, source key) → the link's ``attributes`` column as stored, newest link last."""
    rows = session.execute(
        text("SELECT department, source_key, CAST(attributes AS TEXT) FROM identity_source_record ORDER BY id")
    ).all()
    return {(dept, key): json.loads(raw) for dept, key, raw in rows}


def unlinked(session: Session, key: str) -> Any:
    (raw,) = session.execute(
        text(
            "SELECT CAST(attributes AS TEXT) FROM identity_source_record"
            " WHERE source_key = :k AND unlinked_at IS NOT NULL"
        ),
        {"k": key},
    ).one()
    return json.loads(raw)


def persons(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{"_source_version": "2024-01-01", **r} for r in rows])


FIRST: list[dict[str, Any]] = [
    {"_source_key": "k1", "resident_id": A, "name": "张三", "sex": "1", "address": "洞头区1号"},
    {"_source_key": "k2", "resident_id": B, "name": "李四", "sex": "  ", "address": "洞头区2号"},  # a blank value
    {"_source_key": "k3", "resident_id": C, "name": "王五", "sex": "2", "address": None},
    {"_source_key": "k4", "resident_id": C, "name": "王五", "sex": "2", "address": "洞头区3号"},  # C: two links
]


def _scenario_only_link_stores_the_marker(session: Session) -> None:
    first = link_batch(session, persons(FIRST), "person", "public_security", "persons")
    session.commit()
    assert (first.created, first.linked) == (3, 4)
    raw = stored(session)
    assert raw[("public_security", "k1")] == AS_GOLDEN
    # a blank value is no golden value: such a link keeps what came
    assert raw[("public_security", "k2")] == {"name": "李四", "sex": "  ", "address": "洞头区2号"}
    # an identity of several links: survivorship chose among them, each keeps its own values
    assert raw[("public_security", "k3")] == {"name": "王五", "sex": "2"}
    assert raw[("public_security", "k4")] == {"name": "王五", "sex": "2", "address": "洞头区3号"}
    # read through the ORM, the marker is the values the record carried
    link = session.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.source_key == "k1")).one()
    assert link.attributes == {"name": "张三", "sex": "1", "address": "洞头区1号"}
    # an unchanged re-run recognises the record by its fingerprint: nothing written
    again = link_batch(session, persons(FIRST), "person", "public_security", "persons")
    session.commit()
    assert (again.created, again.linked) == (0, 0)
    assert stored(session) == raw
    assert golden.refresh(session, "person", [A, B, C], cause="link") == 0


def test_only_link_stores_the_marker_on_sqlite(session: Session) -> None:
    _scenario_only_link_stores_the_marker(session)


@pytest.mark.postgres
def test_only_link_stores_the_marker_on_postgres(pg_session: Session) -> None:
    _scenario_only_link_stores_the_marker(pg_session)


def _scenario_a_later_link_writes_the_first_out(session: Session) -> None:
    link_batch(session, persons(FIRST[:1]), "person", "public_security", "persons")
    session.commit()
    assert stored(session)[("public_security", "k1")] == AS_GOLDEN
    # tax knows the same person, with another spelling and a phone number
    later = persons(
        [{"_source_key": "t1", "resident_id": A, "name": "张叁", "address": "别处", "phone": "13812345678"}]
    )
    link_batch(session, later, "person", "tax", "taxpayers")
    session.commit()
    raw = stored(session)
    assert raw[("public_security", "k1")] == {"name": "张三", "sex": "1", "address": "洞头区1号"}
    assert raw[("tax", "t1")] == {"name": "张叁", "address": "别处", "phone": "13812345678"}
    person = session.get(IdentityPerson, A)
    assert person is not None
    session.refresh(person)
    # public security is authoritative for name and address; only tax has a phone
    assert person.attributes == {"name": "张三", "sex": "1", "address": "洞头区1号", "phone": "13812345678"}
    assert person.sources["phone"]["department"] == "tax" and person.sources["name"]["source_key"] == "k1"
    history = [(h.attribute, h.old_value, h.new_value) for h in golden.history(session, "person", A)]
    assert history == [("phone", None, "13812345678")]


def test_a_later_link_writes_the_first_out_on_sqlite(session: Session) -> None:
    _scenario_a_later_link_writes_the_first_out(session)


@pytest.mark.postgres
def test_a_later_link_writes_the_first_out_on_postgres(pg_session: Session) -> None:
    _scenario_a_later_link_writes_the_first_out(pg_session)


def test_a_loaded_link_keeps_its_values_when_the_golden_record_changes(session: Session) -> None:
    link_batch(session, persons(FIRST[:1]), "person", "public_security", "persons")
    session.commit()
    link = session.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.source_key == "k1")).one()
    assert link.stored_attributes == AS_GOLDEN
    later = persons([{"_source_key": "t1", "resident_id": A, "phone": "13812345678"}])
    link_batch(session, later, "person", "tax", "taxpayers")
    # the same object, in the same session: written out, not read through the changed record
    assert link.attributes == {"name": "张三", "sex": "1", "address": "洞头区1号"}
    person = session.get(IdentityPerson, A)
    assert person is not None and person.attributes["phone"] == "13812345678"


def test_unlink_writes_out_the_values_the_link_held(session: Session) -> None:
    link_batch(session, persons(FIRST[:1]), "person", "public_security", "persons")
    session.commit()
    unlink(session, "public_security", "persons", "k1", actor="operator")
    session.commit()
    assert unlinked(session, "k1") == {"name": "张三", "sex": "1", "address": "洞头区1号"}
    person = session.get(IdentityPerson, A)
    assert person is not None
    session.refresh(person)
    assert person.attributes == {} and person.name is None


def test_merge_and_split_move_values_not_the_marker(session: Session) -> None:
    rows = [
        {"_source_key": "a", "resident_id": A, "name": "张三", "address": "洞头区1号"},
        {"_source_key": "b", "resident_id": D, "name": "张叁", "phone": "13812345678"},
    ]
    link_batch(session, persons(rows), "person", "public_security", "persons")
    session.commit()
    assert set(stored(session).values()) == {AS_GOLDEN}
    record = merge(session, "person", D, A, actor="reviewer", reason="same person")
    session.commit()
    active = {
        link.source_key: (link.canonical_code, link.stored_attributes)
        for link in session.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.unlinked_at.is_(None)))
    }
    assert active == {
        "a": (A, {"name": "张三", "address": "洞头区1号"}),
        "b": (A, {"name": "张叁", "phone": "13812345678"}),
    }
    assert unlinked(session, "b") == {"name": "张叁", "phone": "13812345678"}
    survivor = session.get(IdentityPerson, A)
    assert survivor is not None
    session.refresh(survivor)
    assert survivor.attributes["phone"] == "13812345678"
    split(session, record.id, actor="reviewer", reason="twins")
    session.commit()
    back = session.get(IdentityPerson, D)
    assert back is not None
    session.refresh(back)
    assert back.attributes == {"name": "张叁", "phone": "13812345678"}


def test_a_record_moving_to_another_identity_leaves_its_old_values(session: Session) -> None:
    link_batch(session, persons(FIRST[:1]), "person", "public_security", "persons")
    session.commit()
    # the same source record now carries another resident id (a corrected registration)
    moved = persons([{**FIRST[0], "_source_version": "2024-02-01", "resident_id": D}])
    result = link_batch(session, moved, "person", "public_security", "persons")
    session.commit()
    assert (result.created, result.linked) == (1, 1)
    assert unlinked(session, "k1") == {"name": "张三", "sex": "1", "address": "洞头区1号"}
    active = session.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.unlinked_at.is_(None))).one()
    assert (active.canonical_code, active.stored_attributes) == (D, AS_GOLDEN)
    old = session.get(IdentityPerson, A)
    assert old is not None
    session.refresh(old)
    assert old.attributes == {}
    assert {
        h.attribute
        for h in session.scalars(select(IdentityGoldenHistory).where(IdentityGoldenHistory.canonical_code == A))
    } == {"name", "sex", "address"}


def test_materialise_links_on_demand(session: Session) -> None:
    link_batch(session, persons(FIRST), "person", "public_security", "persons")
    session.commit()
    assert golden.materialise_links(session, "person", [A, B, C]) == 1
    assert golden.materialise_links(session, "person", [A]) == 0
    assert stored(session)[("public_security", "k1")] == {"name": "张三", "sex": "1", "address": "洞头区1号"}
    # the golden records did not change by it
    assert golden.refresh(session, "person", [A, B, C], cause="link") == 0
