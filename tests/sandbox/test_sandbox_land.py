"""The land sandbox: XSD-valid exchange packages, some GB18030, sidecar checksums, bad packages on demand."""

from __future__ import annotations

import hashlib

from lxml import etree

from sandbox.land.packages import NS, validate
from sandbox.runtime import Sandboxes


def test_packages_validate_and_carry_every_record(sandbox_embedded: Sandboxes) -> None:
    outbox = sandbox_embedded.land.outbox_dir
    packages = sorted(p for p in outbox.glob("land_0*.xml"))
    assert len(packages) > 1
    units, approvals, encodings = set(), set(), set()
    for path in packages:
        assert validate(path, sandbox_embedded.land.xsd_path) == [], path
        data = path.read_bytes()
        sidecar = (outbox / f"{path.name}.sha256").read_text().split()[0]
        assert sidecar == hashlib.sha256(data).hexdigest()
        doc = etree.fromstring(data)
        encodings.add(data.split(b"?>")[0].decode("ascii"))
        units |= {e.get("unitNo") for e in doc.iter(f"{{{NS}}}PropertyRight")}
        approvals |= {e.get("approvalNo") for e in doc.iter(f"{{{NS}}}ApprovalResult")}
    assert units == set(sandbox_embedded.population.property_rights["unit_no"])
    assert approvals == set(sandbox_embedded.population.approval_results["approval_no"])
    assert any("GB18030" in e for e in encodings) and any("UTF-8" in e for e in encodings)


def test_gb18030_package_reads_back_in_chinese(sandbox_embedded: Sandboxes) -> None:
    outbox = sandbox_embedded.land.outbox_dir
    gb = next(p for p in sorted(outbox.glob("land_0*.xml")) if b"GB18030" in p.read_bytes()[:60])
    doc = etree.parse(str(gb))
    names = [e.text for e in doc.iter(f"{{{NS}}}Name")]
    assert names and all(n for n in names)
    assert any("\u4e00" <= ch <= "\u9fff" for n in names for ch in n)
    raw = gb.read_bytes()
    try:
        raw.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    assert not utf8, "a GB18030 package must really be GB18030-encoded"


def test_owners_by_resident_id_uscc_and_org_code(sandbox_embedded: Sandboxes) -> None:
    kinds = set(sandbox_embedded.population.property_rights["owner_id_type"])
    assert kinds == {"resident_id", "uscc", "org_code"}


def test_bad_packages_on_demand(sandbox_embedded: Sandboxes) -> None:
    faults = sandbox_embedded.faults
    truncated = faults.land_truncated_package()
    assert validate(truncated)[0].startswith("not well-formed")
    badsum = faults.land_wrong_checksum_package()
    assert validate(badsum) == []
    sidecar = (badsum.parent / f"{badsum.name}.sha256").read_text().split()[0]
    assert sidecar != faults.checksum_of(badsum)
    for kind in ("xxe", "billion_laughs"):
        hostile = faults.land_hostile_package(kind)
        errors = validate(hostile)
        assert errors, kind
        assert b"<!ENTITY" in hostile.read_bytes()
        assert "DOCTYPE" in errors[0] or "amplification" in errors[0], errors
    for p in (truncated, badsum, *truncated.parent.glob("land_fault_*.xml")):
        p.unlink(missing_ok=True)
        p.with_name(p.name + ".sha256").unlink(missing_ok=True)
