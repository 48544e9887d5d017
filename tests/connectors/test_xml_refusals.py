"""Hostile and broken XML packages: each refused whole, with libxml2's reason, and recorded.

Every package here is read through ``run_sync`` beside a good package: the good one's rows
are staged, the hostile one is quarantined with its reason and archived as rejected, and
the run reconciles (rows read = staged + quarantined).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from connectors.cli import app as connectors_app
from connectors.staging import LocalStager
from connectors.sync import run_sync
from hub.db import session_scope
from hub.models import QuarantineRecord
from tests.connectors.conftest import XmlHarness, land_package, land_source_block

DECL = '<?xml version="1.0" encoding="{}"?>\n'
#: an internal entity used in an owner's name: with entities not substituted, its text would be empty
DTD = '<!DOCTYPE ExchangePackage [<!ENTITY owner "王五">]>\n'


@pytest.fixture()
def land(tmp_path: Path, hub_db_url: str) -> XmlHarness:
    return XmlHarness(tmp_path / "src", rows=0)


def _body(units: tuple[str, ...] = ("330322001001GB00001F00000001",)) -> str:
    """A land package without its XML declaration."""
    return land_package([(u, 1) for u in units]).decode().split("\n", 1)[1]


def _refused(land: XmlHarness, tmp_path: Path, content: bytes) -> QuarantineRecord:
    """Sync a good package and ``content``; ``content`` must be refused whole and recorded."""
    land.add_records(2)
    name = land.drop(content)
    result = run_sync(land.connector(), "property_rights", source=land.name, stager=LocalStager(tmp_path / "st"))
    assert (result.rows_staged, result.quarantined, result.reconciled) == (2, 1, True)
    with session_scope() as s:
        [q] = s.scalars(select(QuarantineRecord).where(QuarantineRecord.source == land.name))
        s.expunge(q)
    assert q.source_key == name
    assert (land.archive / "rejected" / name).exists() and not (land.outbox / name).exists()
    return q


def _with_dtd(prolog: str = "", encoding: str = "UTF-8") -> str:
    return DECL.format(encoding) + prolog + DTD + _body().replace("张三", "&owner;")


def test_doctype_after_comment_containing_element_is_refused(land: XmlHarness, tmp_path: Path) -> None:
    q = _refused(land, tmp_path, _with_dtd("<!-- <a -->\n").encode())
    assert q.reason_code == "xml_dtd_forbidden"
    assert "<!DOCTYPE ExchangePackage>" in q.reason


def test_doctype_after_a_100_kb_comment_is_refused(land: XmlHarness, tmp_path: Path) -> None:
    q = _refused(land, tmp_path, _with_dtd("<!-- " + "<b>" * 35_000 + " -->\n").encode())
    assert q.reason_code == "xml_dtd_forbidden"


def test_doctype_after_a_long_processing_instruction_is_refused(land: XmlHarness, tmp_path: Path) -> None:
    q = _refused(land, tmp_path, _with_dtd('<?department note="' + "<c>" * 40_000 + '"?>\n').encode())
    assert q.reason_code == "xml_dtd_forbidden"


@pytest.mark.parametrize(
    ("codec", "bom"),
    [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"), ("utf-16-le", b""), ("utf-16-be", b"")],
    ids=["le-bom", "be-bom", "le", "be"],
)
def test_utf16_package_with_doctype_is_refused(land: XmlHarness, tmp_path: Path, codec: str, bom: bytes) -> None:
    q = _refused(land, tmp_path, bom + _with_dtd(encoding="UTF-16").encode(codec))
    assert q.reason_code == "xml_dtd_forbidden"


@pytest.mark.parametrize("encoding", ["GB18030", "GBK"])
def test_chinese_declared_package_with_doctype_is_refused(land: XmlHarness, tmp_path: Path, encoding: str) -> None:
    content = _with_dtd(encoding=encoding).encode(encoding)
    assert "浙".encode(encoding) in content
    assert _refused(land, tmp_path, content).reason_code == "xml_dtd_forbidden"


@pytest.mark.parametrize("codec", ["utf-32-le", "utf-32-be"])
def test_utf32_package_with_doctype_is_refused(land: XmlHarness, tmp_path: Path, codec: str) -> None:
    q = _refused(land, tmp_path, _with_dtd(encoding=codec.upper()).encode(codec))
    assert q.reason_code == "xml_dtd_forbidden"


def test_utf32_package_with_bom_is_refused_with_libxml2_reason(land: XmlHarness, tmp_path: Path) -> None:
    # libxml2 2.14 does not take FF FE 00 00 for a UTF-32 byte-order mark: refused, not read
    q = _refused(land, tmp_path, _with_dtd(encoding="UTF-32").encode("utf-32"))
    assert q.reason_code == "xml_not_well_formed"
    assert "libxml2: Start tag expected" in q.reason and "line 1" in q.reason


_LAUGHS = (
    '<!DOCTYPE ExchangePackage [<!ENTITY lol0 "lol">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    + "]>\n"
)


@pytest.mark.parametrize("where", ["text", "attribute"])
def test_billion_laughs_is_refused(land: XmlHarness, tmp_path: Path, where: str) -> None:
    body = _body().replace("张三", "&lol9;") if where == "text" else _body().replace('"P1"', '"&lol9;"')
    q = _refused(land, tmp_path, (DECL.format("UTF-8") + _LAUGHS + body).encode())
    assert q.reason_code == "xml_dtd_forbidden"


@pytest.mark.parametrize(
    "dtd",
    [
        '<!DOCTYPE ExchangePackage [<!ENTITY owner SYSTEM "file://{secret}">]>\n',
        '<!DOCTYPE ExchangePackage [<!ENTITY % leak SYSTEM "file://{secret}"> %leak;]>\n',
        '<!DOCTYPE ExchangePackage SYSTEM "file://{secret}">\n',
    ],
    ids=["external-entity", "parameter-entity", "external-subset"],
)
def test_external_and_parameter_entities_are_refused(land: XmlHarness, tmp_path: Path, dtd: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE\n")
    body = _body().replace("张三", "&owner;")
    q = _refused(land, tmp_path, (DECL.format("UTF-8") + dtd.format(secret=secret) + body).encode())
    assert q.reason_code == "xml_dtd_forbidden"
    assert "TOP-SECRET" not in q.reason + json.dumps(q.payload)


def test_entity_reference_in_owner_name_is_refused(land: XmlHarness, tmp_path: Path) -> None:
    # no DTD: the reference is undeclared; its text must not silently become an empty name
    q = _refused(land, tmp_path, (DECL.format("UTF-8") + _body().replace("张三", "&owner;")).encode())
    assert q.reason_code == "xml_entity_forbidden"
    assert "libxml2: Entity 'owner' not defined (line 3, column" in q.reason


def test_invalid_utf8_reason_carries_libxml2_message_and_line(land: XmlHarness, tmp_path: Path) -> None:
    content = (DECL.format("UTF-8") + _body()).encode().replace("张三".encode(), b"\xff\xfe")
    q = _refused(land, tmp_path, content)
    assert q.reason_code == "xml_encoding_invalid"
    assert "libxml2: Invalid bytes in character encoding (line 3, column" in q.reason
    assert "no element found" not in q.reason


def test_huge_text_node_is_refused_with_the_limit_named(land: XmlHarness, tmp_path: Path) -> None:
    content = (DECL.format("UTF-8") + _body().replace("张三", "x" * 10_500_000)).encode()
    q = _refused(land, tmp_path, content)
    assert q.reason_code == "xml_limit_exceeded"
    assert "a text node is longer than 10,000,000 bytes" in q.reason and "Text node too long" in q.reason


def test_nesting_beyond_the_parser_limit_is_refused(land: XmlHarness, tmp_path: Path) -> None:
    deep = "<Note>" * 300 + "</Note>" * 300
    q = _refused(land, tmp_path, (DECL.format("UTF-8") + _body().replace("<Status>", deep + "<Status>")).encode())
    assert q.reason_code == "xml_limit_exceeded"
    assert "deeper than 256 levels" in q.reason


def test_truncated_package_reason_names_where_it_ends(land: XmlHarness, tmp_path: Path) -> None:
    content = land_package([("330322001001GB00001F00000001", 1), ("330322001001GB00002F00000002", 1)])
    q = _refused(land, tmp_path, content[:-40])
    assert q.reason_code == "xml_truncated"
    assert "libxml2:" in q.reason and "(line 4, column" in q.reason


def test_package_restarting_after_a_hidden_error_is_refused(land: XmlHarness, tmp_path: Path) -> None:
    # lxml forgives the fatal error it cannot see with an XSD plugged in and starts a new document
    # at the next 32 KB chunk: a whole second package there must not be read as this one
    broken = land_package([("330322001001GB00009F00000009", 1)]).replace("张三".encode(), "张\x01".encode())
    broken = broken[: broken.rindex(b"</ExchangePackage>")]
    first = broken + b" " * (32_768 - len(broken))
    second = land_package([("330322001001GB00010F00000010", 1), ("330322001001GB00011F00000011", 1)])
    q = _refused(land, tmp_path, first + second)
    assert q.reason_code == "xml_not_well_formed"
    assert "libxml2: " in q.reason and "(line 3, column" in q.reason


def test_second_package_after_the_end_is_refused(land: XmlHarness, tmp_path: Path) -> None:
    # content after the root is a fatal error lxml forgives: a package at the next chunk would be read too
    first = land_package([("330322001001GB00009F00000009", 1)]) + b"<Trailer/>"
    padded = first + b" " * (32_768 - len(first))
    q = _refused(land, tmp_path, padded + land_package([("330322001001GB00010F00000010", 1)]))
    assert q.reason_code == "xml_not_well_formed"
    assert "libxml2: Extra content at the end of the document" in q.reason


def test_error_in_the_prolog_is_refused(land: XmlHarness, tmp_path: Path) -> None:
    # the same restart, from an error before the root: the prolog's parser refuses it
    prolog = (DECL.format("UTF-8") + "<!-- ").encode() + b"\xff -->\n"
    first = prolog + b" " * (32_768 - len(prolog))
    q = _refused(land, tmp_path, first + land_package([("330322001001GB00010F00000010", 1)]))
    assert q.reason_code == "xml_encoding_invalid"
    assert "(line 2, column" in q.reason


def test_preview_of_a_refused_package_changes_nothing(land: XmlHarness) -> None:
    name = land.drop(_with_dtd("<!-- <a -->\n").encode())
    batches = list(land.connector().read("property_rights", None, limit=5))  # type: ignore[call-arg]
    assert [b.table.num_rows for b in batches] == [0]
    [bad] = batches[0].bad_records
    assert (bad.reason_code, bad.source_key) == ("xml_dtd_forbidden", name)
    assert sorted(p.name for p in land.outbox.iterdir()) == [name, f"{name}.sha256"]
    assert not land.archive.exists()
    assert not list((land.root / "work").rglob("*.done"))


def test_connectors_read_prints_why_a_package_is_refused(land: XmlHarness, tmp_path: Path) -> None:
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    block = land_source_block(land.outbox, land.archive)
    (mappings / "land_property_rights.yaml").write_text(yaml.safe_dump({"source": block}, allow_unicode=True))
    name = land.drop((DECL.format("UTF-8") + _body().replace("张三", "&owner;")).encode())
    result = CliRunner().invoke(
        connectors_app, ["read", "land_property_rights", "property_rights", "--mappings", str(mappings)]
    )
    assert result.exit_code == 0, result.output
    assert f"refused {name}: xml_entity_forbidden" in result.output
    assert "Entity 'owner' not defined" in result.output
    assert sorted(p.name for p in land.outbox.iterdir()) == [name, f"{name}.sha256"]
    assert not land.archive.exists()
