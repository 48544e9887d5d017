"""XML exchange packages: hardening, validation, acknowledgement, idempotency, GB18030."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connectors.base import SOURCE_KEY
from connectors.staging import LocalStager
from connectors.sync import run_sync
from hub.db import session_scope
from hub.models import QuarantineRecord
from tests.connectors.conftest import XmlHarness, land_package


@pytest.fixture()
def land(tmp_path: Path, hub_db_url: str) -> XmlHarness:
    return XmlHarness(tmp_path / "src", rows=0)


def _quarantine(source: str) -> list[QuarantineRecord]:
    with session_scope() as s:
        return list(s.scalars(select(QuarantineRecord).where(QuarantineRecord.source == source)))


def _sync(land: XmlHarness, tmp_path: Path, dataset: str = "property_rights"):  # type: ignore[no-untyped-def]
    return run_sync(land.connector(), dataset, source=land.name, stager=LocalStager(tmp_path / "staging"))


def test_gb18030_package_is_decoded(land: XmlHarness, tmp_path: Path) -> None:
    name = land.drop(land_package([("330322001001GB00001F00000001", 1)], encoding="GB18030"))
    assert "浙".encode("gb18030") in (land.outbox / name).read_bytes()  # really GB18030 on disk
    batch = next(iter(land.connector().read("property_rights", None)))
    row = batch.table.to_pylist()[0]
    assert row["certificate_no"].startswith("浙(2016)洞头区不动产权第")
    assert row["owner_names"] == ["张三", "李四"]
    assert row["owner_id_codes"] == ["330322198001010011", "33032219800101002X"]
    assert row["owner_shares"] == "1/2;"  # joined per Owner, so positions line up with the other owner columns
    assert row["owner_id_types_joined"] == "resident_id;resident_id"  # scalar path, repeated: ';'-joined


@pytest.mark.parametrize(
    ("content", "reason_code"),
    [
        (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">]>\n<ExchangePackage/>', "xml_dtd_forbidden"),
        (land_package([("U1", 1)]).replace(b"<Area>89.50</Area>", b"<Area>big</Area>"), "xml_schema_invalid"),
        (land_package([("U1", 1), ("U2", 1)])[:-40], "xml_truncated"),
        (land_package([("U1", 1)]).replace(b"</CertificateNo>", b"</CertificateNo"), "xml_not_well_formed"),
    ],
)
def test_bad_package_is_quarantined_whole(land: XmlHarness, tmp_path: Path, content: bytes, reason_code: str) -> None:
    land.add_records(3)
    name = land.drop(content)
    result = _sync(land, tmp_path)
    assert result.rows_staged == 3 and result.quarantined == 1 and result.reconciled
    [q] = _quarantine(land.name)
    assert (q.source_key, q.reason_code) == (name, reason_code)
    assert "what" not in q.reason or q.reason  # the reason is a sentence for the operator
    assert (land.archive / "rejected" / name).exists()
    assert (land.outbox / f"{name}.ack").read_text().strip() == hashlib.sha256(content).hexdigest()


def test_wrong_sidecar_checksum_quarantines_the_package(land: XmlHarness, tmp_path: Path) -> None:
    name = land.drop(land_package([("U1", 1)]), checksum="0" * 64)
    result = _sync(land, tmp_path)
    assert result.rows_staged == 0
    assert [q.reason_code for q in _quarantine(land.name)] == ["checksum_mismatch"]
    assert not (land.outbox / name).exists()


def test_package_without_sidecar_waits(land: XmlHarness, tmp_path: Path) -> None:
    (land.outbox / "incoming.xml").write_bytes(land_package([("U1", 1)]))
    assert _sync(land, tmp_path).rows_read == 0
    assert (land.outbox / "incoming.xml").exists()


def test_acknowledged_and_archived_only_after_every_dataset_read(land: XmlHarness, tmp_path: Path) -> None:
    land.add_records(4)
    name = "pkg-00001.xml"
    rights = _sync(land, tmp_path, "property_rights")
    assert rights.rows_staged == 4
    assert (land.outbox / name).exists() and not (land.outbox / f"{name}.ack").exists()
    approvals = _sync(land, tmp_path, "approval_results")
    assert approvals.rows_staged == 2
    import pyarrow.parquet as pq

    rows = [r for ref in approvals.staged_refs for r in pq.read_table(ref).to_pylist()]
    assert {r["issuer_code"] for r in rows} == {"330322"} and rows[0]["conclusion"] == "approved"
    sha = hashlib.sha256((land.archive / "accepted" / name).read_bytes()).hexdigest()
    assert (land.outbox / f"{name}.ack").read_text().strip() == sha
    assert not (land.outbox / name).exists()


def test_same_content_dropped_again_is_not_read_twice(land: XmlHarness, tmp_path: Path) -> None:
    content = land_package([("U1", 1), ("U2", 1)])
    land.drop(content)
    first = _sync(land, tmp_path)
    land.drop(content)  # the department resends an identical package under a new name
    second = _sync(land, tmp_path)
    assert first.rows_staged == 2 and second.rows_staged == 0


def test_preview_limit_does_not_acknowledge(land: XmlHarness) -> None:
    land.add_records(60)
    batches = list(land.connector().read("property_rights", None, limit=5))  # type: ignore[call-arg]
    assert sum(b.table.num_rows for b in batches) == 5
    assert not list(land.outbox.glob("*.ack"))


def test_keys_and_versions_travel_with_rows(land: XmlHarness, tmp_path: Path) -> None:
    units = land.add_records(2)
    land.update_record(units[0])
    result = _sync(land, tmp_path)
    import pyarrow.parquet as pq

    pairs = sorted(
        (k, v)
        for ref in result.staged_refs
        for k, v in zip(
            pq.read_table(ref)[SOURCE_KEY].to_pylist(), pq.read_table(ref)["_source_version"].to_pylist(), strict=True
        )
    )
    assert pairs == sorted([(units[0], "1"), (units[0], "2"), (units[1], "1")])


def test_unmounted_outbox_is_unavailable(land: XmlHarness) -> None:
    from connectors.errors import ConnectorUnavailable

    with pytest.raises(ConnectorUnavailable, match="not mounted"):
        list(land.connector_unreachable().read("property_rights", None))


# --- the compiled record plan gives what FieldPath.extract gives, field by field -------------
_PLAN_FIELDS = {
    "id": "@id",
    "missing_attr": "@nope",
    "a": "A",
    "a_all": "A[]",
    "a_k": "A/@k",
    "a_k_all": "A/@k[]",
    "b_all": "B[]",
    "c_x": "C/X",
    "c_x_all": "C/X[]",
    "c_y": "C/Y",
    "b_x_all": "B/X[]",
    "d": "D",
    "id_list": "@id[]",
}

_text = st.one_of(st.none(), st.text(alphabet="ab;甲", min_size=1, max_size=3))
_grand = st.tuples(st.sampled_from("XYZ"), _text)
_child = st.tuples(
    st.sampled_from("ABCE"),
    _text,
    st.one_of(st.none(), st.text("kv", min_size=1, max_size=2)),
    st.lists(_grand, max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    record_id=st.one_of(st.none(), st.text("0123", min_size=1, max_size=3)),
    children=st.lists(_child, max_size=6),
    namespaced=st.booleans(),
)
def test_record_plan_matches_fieldpath_extract(record_id: str | None, children: list, namespaced: bool) -> None:
    from lxml import etree

    from connectors.xml_records import FieldPath, RecordPlan

    ns = "urn:test" if namespaced else ""
    q = (lambda n: f"{{{ns}}}{n}") if ns else (lambda n: n)
    record = etree.Element(q("R"), id=record_id) if record_id is not None else etree.Element(q("R"))
    for tag, text, k, grands in children:
        child = etree.SubElement(record, q(tag), k=k) if k is not None else etree.SubElement(record, q(tag))
        child.text = text
        for gtag, gtext in grands:
            etree.SubElement(child, q(gtag)).text = gtext
    fields = [FieldPath.parse(col, path, ns) for col, path in _PLAN_FIELDS.items()]
    expected = [f.extract(record) for f in fields]
    got = [list(v) if isinstance(v, tuple) else v for v in RecordPlan(fields).extract(record)]
    assert got == expected


# --- repeated choices compiled as repeated sequences accept exactly the same packages ---------
_KINDS = {
    "right": land_package([("330322001001GB00001F00000001", 1)]).split(b"\n")[2],
    "approval": land_package([], approvals=1).split(b"\n")[2],
    "bogus": b"<Bogus/>",
    "bad_right": land_package([("U1", 1)]).split(b"\n")[2].replace(b"<Area>89.50</Area>", b""),
}


@pytest.mark.parametrize("xsd", ["tests/connectors/data/land_exchange_test.xsd", "sandbox/land/land_exchange.xsd"])
@settings(max_examples=60, deadline=None)
@given(children=st.lists(st.sampled_from(sorted(_KINDS)), max_size=5))
def test_rewritten_schema_accepts_what_the_original_accepts(xsd: str, children: list[str]) -> None:
    from lxml import etree

    from connectors.xml_schema import repeat_choices_as_sequences
    from hub.settings import REPO_ROOT

    original = etree.parse(str(REPO_ROOT / xsd))
    rewritten = etree.parse(str(REPO_ROOT / xsd))
    repeat_choices_as_sequences(rewritten)
    xs = "{http://www.w3.org/2001/XMLSchema}"
    repeated = [c for c in original.iter(f"{xs}choice") if c.get("maxOccurs", "1") != "1"]
    assert repeated and all(c.get("maxOccurs", "1") == "1" for c in rewritten.iter(f"{xs}choice"))
    body = b"\n".join(_KINDS[k] for k in children)
    doc = etree.fromstring(
        b'<ExchangePackage xmlns="urn:hub:sandbox:land:1" packageId="P1" createdAt="2026-11-01T09:00:00+08:00" '
        b'sender="330322">' + body + b"</ExchangePackage>"
    )
    assert etree.XMLSchema(rewritten).validate(doc) == etree.XMLSchema(original).validate(doc)


def test_other_records_between_records_are_read_by_their_own_dataset(land: XmlHarness, tmp_path: Path) -> None:
    # approvals around and between the property rights: each dataset gets exactly its own records
    content = land_package([], approvals=3).replace(
        b"</ExchangePackage>", land_package([("U1", 1), ("U2", 1)]).split(b'sender="330322">\n')[1]
    )
    content = content.replace(b"</ExchangePackage>\n", land_package([], approvals=2).split(b'sender="330322">\n')[1])
    land.drop(content)
    rights = _sync(land, tmp_path, "property_rights")
    approvals = _sync(land, tmp_path, "approval_results")
    assert (rights.rows_staged, approvals.rows_staged) == (2, 5)
    assert rights.quarantined == approvals.quarantined == 0


def test_element_named_like_a_package_child_inside_a_record_is_kept(tmp_path: Path, hub_db_url: str) -> None:
    # the root's children are cleared as they end; the same name nested in a record is record content
    xsd = tmp_path / "notes.xsd"
    xsd.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="Pkg"><xs:complexType>'
        '<xs:choice maxOccurs="unbounded"><xs:element name="Note" type="xs:string"/>'
        '<xs:element name="Rec"><xs:complexType><xs:sequence><xs:element name="Note" type="xs:string"/>'
        '</xs:sequence><xs:attribute name="id" type="xs:string"/></xs:complexType></xs:element>'
        "</xs:choice></xs:complexType></xs:element></xs:schema>"
    )
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    content = (
        b'<Pkg><Note>top</Note><Rec id="1"><Note>inner 1</Note></Rec><Note>mid</Note>'
        b'<Rec id="2"><Note>inner 2</Note></Rec></Pkg>'
    )
    (outbox / "p.xml").write_bytes(content)
    (outbox / "p.xml.sha256").write_text(hashlib.sha256(content).hexdigest())
    from connectors.registry import make_connector

    block = {
        "protocol": "xml",
        "outbox": str(outbox),
        "xsd": str(xsd),
        "datasets": {"recs": {"element": "Rec", "key": "id", "fields": {"id": "@id", "note": "Note"}}},
    }
    connector = make_connector(block, name="notes", work_root=tmp_path / "work")
    rows = [r for b in connector.read("recs", None) for r in b.table.to_pylist()]
    assert [(r["id"], r["note"]) for r in rows] == [("1", "inner 1"), ("2", "inner 2")]


def test_record_without_key_is_quarantined_with_its_personal_values_masked(tmp_path: Path, hub_db_url: str) -> None:
    # the refused record's raw values are kept for the operator, masked by what they are
    xsd = tmp_path / "owners.xsd"
    xsd.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="Pkg"><xs:complexType>'
        '<xs:sequence><xs:element name="Rec" maxOccurs="unbounded"><xs:complexType><xs:sequence>'
        '<xs:element name="Name" type="xs:string"/><xs:element name="Note" type="xs:string"/>'
        '</xs:sequence><xs:attribute name="id" type="xs:string"/></xs:complexType></xs:element>'
        "</xs:sequence></xs:complexType></xs:element></xs:schema>"
    )
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    content = (
        '<Pkg><Rec id="1"><Name>王小明</Name><Note>ok</Note></Rec>'
        "<Rec><Name>欧阳娜娜</Name><Note>证件 330322198001010011</Note></Rec></Pkg>"
    ).encode()
    (outbox / "p.xml").write_bytes(content)
    (outbox / "p.xml.sha256").write_text(hashlib.sha256(content).hexdigest())
    from connectors.registry import make_connector

    fields = {"id": "@id", "name": "Name", "note": "Note"}
    block = {
        "protocol": "xml",
        "outbox": str(outbox),
        "xsd": str(xsd),
        "datasets": {"recs": {"element": "Rec", "key": "id", "fields": fields}},
    }
    connector = make_connector(block, name="owners", work_root=tmp_path / "work", personal_columns={"name": "name"})
    result = run_sync(connector, "recs", source="owners", stager=LocalStager(tmp_path / "staging"))
    assert (result.rows_staged, result.quarantined, result.reconciled) == (1, 1, True)
    [row] = _quarantine("owners")
    assert row.reason_code == "missing_source_key"
    text = repr(row.payload)
    assert "欧阳娜娜" not in text and "330322198001010011" not in text
    assert row.payload["name"].startswith("欧") and row.payload["note"].startswith("证件 ")
