"""Deterministic resolution and linking against the master index (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from hub.models import OutboxEvent
from identifiers import org_code, reg_no, resident_id, uscc
from identity import golden
from identity.matching_step import provisional_code
from identity.resolve import link_batch, link_mapping_batch, resolve_batch, resolve_codes
from identity.tables import IdentityCrosswalk, IdentityEnterprise, IdentityPerson, IdentitySourceRecord


def rid(body17: str) -> str:
    return body17 + resident_id.calc_check_digit(body17)


def make_uscc(region: str, org_body: str) -> str:
    org = org_body + org_code.calc_check_digit(org_body)
    body = f"91{region}{org}"
    return body + uscc.calc_check_digit(body)


def make_reg_no(body14: str) -> str:
    return body14 + reg_no.calc_check_digit(body14)


P1 = rid("33032219800101001")  # male
P2 = rid("33032219850202002")
LEGACY_P2 = "330322850202002"  # P2's 15-digit card
E1 = make_uscc("330322", "12345678")
E2 = make_uscc("330300", "87654321")
REG_E2 = make_reg_no("33030000000123")


def persons(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def _count(session: Session, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _person_batch() -> pd.DataFrame:
    return persons(
        [
            {"_source_key": "1", "_source_version": "2024-01-01", "resident_id": P1, "name": "张三", "sex": "1"},
            {"_source_key": "2", "_source_version": "2024-01-01", "resident_id": LEGACY_P2, "name": "李四", "sex": "2"},
            {
                "_source_key": "3",
                "_source_version": "2024-01-01",
                "resident_id": " ３３０３２２１９８０ ０１０１００１" + P1[-1].lower(),
                "name": "張三",
                "sex": "1",
            },
            {
                "_source_key": "4",
                "_source_version": "2024-01-01",
                "resident_id": P1[:-1] + "0",
                "name": "王五",
                "sex": "1",
            },
            {"_source_key": "5", "_source_version": "2024-01-01", "resident_id": None, "name": "赵六", "sex": "2"},
        ]
    )


def _scenario_persons(session: Session) -> None:
    out = resolve_batch(session, _person_batch(), "person", "public_security", "persons")
    # no usable code and an empty index (nothing to match against): provisional identities
    prov4, prov5 = (provisional_code("public_security", "persons", k) for k in ("4", "5"))
    assert out["canonical_code"].tolist() == [P1, P2, P1, prov4, prov5]
    assert out["identity_method"].tolist() == ["exact", "converted_15_to_18", "exact", "provisional", "provisional"]
    assert out["identity_status"].tolist() == ["new"] * 5
    assert out["resolved_id"].tolist() == out["canonical_code"].tolist()
    session.commit()
    assert _count(session, IdentityPerson) == 4
    assert session.scalars(select(IdentityPerson.resident_id).where(IdentityPerson.provisional)).all() == sorted(
        [prov4, prov5]
    )
    # the 15-digit card is in the cross-walk, with its source and method
    walk = session.scalars(select(IdentityCrosswalk)).all()
    assert [(w.legacy_code, w.code_kind, w.canonical_code, w.method, w.source) for w in walk] == [
        (LEGACY_P2, "resident_id_15", P2, "converted_15_to_18", "public_security/persons")
    ]
    # ... and announced in the outbox, the legacy id masked
    events = session.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "identity.merged")).all()
    assert [e.holder_code for e in events] == [P2]
    assert LEGACY_P2 not in str(events[0].payload)
    # golden record from the linked records; the source of the value kept
    p1 = session.get(IdentityPerson, P1)
    assert p1 is not None and p1.sex == "1" and p1.name in {"张三", "張三"}
    assert p1.sources["name"]["department"] == "public_security"
    # running the same batch again changes nothing
    again = resolve_batch(session, _person_batch(), "person", "public_security", "persons")
    session.commit()
    assert again["identity_status"].tolist() == ["resolved"] * 5
    assert again["canonical_code"].tolist()[3:] == [prov4, prov5]
    assert _count(session, IdentitySourceRecord) == 5
    assert _count(session, IdentityCrosswalk) == 1
    assert _count(session, OutboxEvent) == 1


def test_persons_on_sqlite(session: Session) -> None:
    _scenario_persons(session)


@pytest.mark.postgres
def test_persons_on_postgres(pg_session: Session) -> None:
    _scenario_persons(pg_session)


def _scenario_enterprises(session: Session) -> None:
    commerce = pd.DataFrame(
        [
            {
                "_source_key": "c1",
                "_source_version": "v1",
                "uscc": E1,
                "reg_no": None,
                "org_code": E1[8:16] + "-" + E1[16],
                "name": "洞头海鲜有限公司",
                "status": "存续",
                "legal_rep_resident_id": P1,
            },
            {
                "_source_key": "c2",
                "_source_version": "v1",
                "uscc": E2,
                "reg_no": REG_E2,
                "org_code": E2[8:17],
                "name": "温州船舶有限公司",
                "status": "注销",
                "legal_rep_resident_id": P2,
            },
        ]
    )
    out = link_batch(session, commerce, "enterprise", "commerce", "enterprises").records
    assert out["identity_status"].tolist() == ["new", "new"]
    session.commit()
    e2 = session.get(IdentityEnterprise, E2)
    assert e2 is not None and e2.org_code == E2[8:17] and e2.status == "注销"
    # learnt from commerce: the registration number and organisation codes point at the USCC
    learnt = {
        (w.legacy_code, w.code_kind): (w.canonical_code, w.method) for w in session.scalars(select(IdentityCrosswalk))
    }
    assert learnt[(REG_E2, "reg_no")] == (E2, "commerce_registry")

    # tax: old 15-digit taxpayer ids (region + organisation code), one USCC, one unknown
    tax = pd.DataFrame(
        [
            {
                "_source_key": "t1",
                "_source_version": "2024",
                "taxpayer_code": "330322" + E1[8:17],
                "taxpayer_name": "洞头海鲜公司",
                "taxpayer_status": "normal",
            },
            {
                "_source_key": "t2",
                "_source_version": "2024",
                "taxpayer_code": E2,
                "taxpayer_name": "温州船舶公司",
                "taxpayer_status": "cancelled",
            },
            {
                "_source_key": "t3",
                "_source_version": "2024",
                "taxpayer_code": "330322" + "11111111" + org_code.calc_check_digit("11111111"),
                "taxpayer_name": "无名公司",
                "taxpayer_status": "normal",
            },
        ]
    )
    out = resolve_batch(session, tax, "enterprise", "tax", "taxpayers")
    # a valid old taxpayer id nobody holds yet, whose name matches no enterprise: it waits for its
    # enterprise (the cross-walk, the housekeeping relink), no provisional identity
    assert out["canonical_code"].tolist() == [E1, E2, None]
    assert out["identity_method"].tolist() == ["taxpayer_org_code", "exact", None]
    assert out["identity_status"].tolist() == ["resolved", "resolved", "unresolved"]
    session.commit()
    e1 = session.get(IdentityEnterprise, E1)
    assert e1 is not None
    # survivorship: commerce names the enterprise, tax owns the tax status
    assert e1.name == "洞头海鲜有限公司" and e1.sources["name"]["department"] == "commerce"
    assert e1.attributes["tax_status"] == "normal" and e1.sources["tax_status"]["department"] == "tax"

    # land: organisation code alone, registration number alone (through the cross-walk)
    land = pd.DataFrame(
        [
            {"_source_key": "l1", "holder_code": E1[8:17]},
            {"_source_key": "l2", "holder_code": REG_E2},
            {"_source_key": "l3", "holder_code": "not a code"},
        ]
    )
    res = resolve_codes(session, land["holder_code"].tolist(), "enterprise")
    assert res["canonical_code"].tolist() == [E1, E2, None]
    assert res["method"].tolist() == ["org_code_in_uscc", "crosswalk", None]


def test_enterprises_on_sqlite(session: Session) -> None:
    _scenario_enterprises(session)


@pytest.mark.postgres
def test_enterprises_on_postgres(pg_session: Session) -> None:
    _scenario_enterprises(pg_session)


def test_organisation_code_of_an_identity_created_in_the_same_batch(session: Session) -> None:
    batch = pd.DataFrame(
        [
            {"_source_key": "a", "uscc": None, "org_code": E1[8:17]},
            {"_source_key": "b", "uscc": E1, "org_code": None},
        ]
    )
    out = resolve_batch(session, batch, "enterprise", "commerce", "enterprises")
    assert out["canonical_code"].tolist() == [E1, E1]
    assert out["identity_method"].tolist() == ["org_code_in_uscc", "exact"]


def test_batch_queries_do_not_grow_with_rows(session: Session) -> None:
    def statements(n: int) -> int:
        rows = [
            {
                "_source_key": f"k{n}-{i}",
                "resident_id": rid(f"3303221980{(i % 12) + 1:02d}{(i % 28) + 1:02d}{i % 1000:03d}"),
                "name": "某人",
            }
            for i in range(n)
        ]
        count = 0

        def on_execute(*_args: Any) -> None:
            nonlocal count
            count += 1

        engine = session.get_bind()
        event.listen(engine, "before_cursor_execute", on_execute)
        try:
            resolve_batch(session, pd.DataFrame(rows), "person", "public_security", f"ds{n}")
            session.flush()
        finally:
            event.remove(engine, "before_cursor_execute", on_execute)
        return count

    assert statements(200) <= statements(10) + 2  # executemany counts once per statement


def test_relinking_a_record_keeps_history_and_refreshes_both(session: Session) -> None:
    first = persons([{"_source_key": "9", "_source_version": "1", "resident_id": P1, "name": "甲"}])
    resolve_batch(session, first, "person", "public_security", "persons")
    moved = persons([{"_source_key": "9", "_source_version": "2", "resident_id": P2, "name": "甲"}])
    resolve_batch(session, moved, "person", "public_security", "persons")
    session.commit()
    links = session.scalars(select(IdentitySourceRecord).order_by(IdentitySourceRecord.id)).all()
    assert [(lk.canonical_code, lk.unlinked_at is not None) for lk in links] == [(P1, True), (P2, False)]
    p1, p2 = session.get(IdentityPerson, P1), session.get(IdentityPerson, P2)
    assert p1 is not None and p2 is not None
    assert p1.name is None and p2.name == "甲"
    # a new identity's first values are not changes; losing its only record is
    assert [(h.attribute, h.old_value, h.new_value, h.cause) for h in golden.history(session, "person", P1)] == [
        ("name", "甲", None, "link"),
    ]


def test_mapping_calling_convention(session: Session) -> None:
    from pathlib import Path

    from mappings.engine import load_mapping

    mapping = load_mapping(Path("mappings/commerce_enterprises.yaml"))
    df = pd.DataFrame(
        [
            {
                "_source_key": "c9",
                "_source_version": "v",
                "uscc": E1,
                "reg_no": None,
                "org_code": None,
                "name": "洞头海鲜有限公司",
            }
        ]
    )
    result = link_mapping_batch(session, df, mapping, run_id="run-1")
    assert result.created == 1 and result.linked == 1
    assert result.records["resolved_id"].tolist() == [E1]


def test_approval_applicants_resolve_through_their_mapping(session: Session) -> None:
    from pathlib import Path

    from mappings.engine import load_mapping

    resolve_batch(session, pd.DataFrame([{"_source_key": "c1", "uscc": E1}]), "enterprise", "commerce", "ents")
    mapping = load_mapping(Path("mappings/land_approval_results.yaml"))
    df = pd.DataFrame(
        [
            {"_source_key": "a1", "approval_no": "A1", "applicant_code": E1[8:16] + "-" + E1[16]},
            {"_source_key": "a2", "approval_no": "A2", "applicant_code": "bogus"},
        ]
    )
    result = link_mapping_batch(session, df, mapping, run_id="run-2")
    assert result.records["resolved_id"].tolist() == [E1, None]
    assert result.records["identity_method"].tolist() == ["org_code_in_uscc", None]


def test_property_owners_inside_lists_get_resolved_ids(session: Session) -> None:
    from pathlib import Path

    from mappings.engine import load_mapping

    resolve_batch(session, pd.DataFrame([{"_source_key": "c1", "uscc": E1}]), "enterprise", "commerce", "ents")
    mapping = load_mapping(Path("mappings/land_property_rights.yaml"))

    def owners() -> list[dict[str, Any]]:
        return [
            {"holder_code": LEGACY_P2, "holder_kind": "person", "name": "李四", "share": "1/2"},
            {"holder_code": E1[8:17], "holder_kind": "enterprise", "name": "温州某公司", "share": "1/2"},
            # no usable code: a named person is matched (nobody: a provisional identity), one of no
            # declared kind is not (which model's would it be?)
            {"holder_code": "nonsense", "holder_kind": "person", "name": "王五"},
            {"holder_code": "nonsense", "holder_kind": None, "name": "赵六"},
        ]

    def batch() -> pd.DataFrame:
        return pd.DataFrame([{"_source_key": "u1", "_source_version": "3", "unit_no": "U1", "owners": owners()}])

    result = link_mapping_batch(session, batch(), mapping, run_id="run-3")
    resolved = [o["resolved_id"] for o in result.records["owners"].iloc[0]]
    p3 = provisional_code("land", "property_rights", "u1#2")
    assert resolved == [P2, E1, p3, None]
    assert (result.provisional, result.linked_by_match, result.sent_to_review) == (1, 0, 0)
    assert session.get(IdentityPerson, p3).provisional  # type: ignore[union-attr]
    # each resolved owner is a source record of the land department: "who is this?" shows it
    person = session.get(IdentityPerson, P2)
    assert person is not None and person.name == "李四"
    assert person.sources["name"] == {
        "department": "land",
        "dataset": "property_rights",
        "source_key": "u1#0",
        "source_version": "3",
    }
    links = session.execute(
        select(
            IdentitySourceRecord.source_key, IdentitySourceRecord.canonical_code, IdentitySourceRecord.source_version
        )
        .where(IdentitySourceRecord.department == "land")
        .order_by(IdentitySourceRecord.source_key)
    ).all()
    assert [tuple(r) for r in links] == [("u1#0", P2, "3"), ("u1#1", E1, "3"), ("u1#2", p3, "3")]
    assert (result.created, result.linked) == (2, 3)  # P2 and p3 are new; E1 was known to commerce
    # a re-run links nothing twice and creates nothing
    again = link_mapping_batch(session, batch(), mapping, run_id="run-4")
    assert (again.created, again.linked) == (0, 0)
    assert [o["resolved_id"] for o in again.records["owners"].iloc[0]] == [P2, E1, p3, None]
    assert (
        session.scalar(
            select(func.count()).select_from(IdentitySourceRecord).where(IdentitySourceRecord.department == "land")
        )
        == 3
    )
