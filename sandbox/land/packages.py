"""Land exchange packages (不动产数据交换包): XML batches with an XSD, dropped into an outbox.

Each package holds up to N records (property rights 不动产权 and land-use pre-review
opinions 用地预审意见), is written with lxml, some in GB18030 as real provincial feeds are,
and gets a ``<name>.xml.sha256`` sidecar. Fault helpers drop bad packages on demand.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from lxml import etree

NS = "urn:hub:sandbox:land:1"
XSD_PATH = Path(__file__).with_name("land_exchange.xsd")
SENDER = "330322"
_E = f"{{{NS}}}"


def _text(parent: etree._Element, tag: str, value: Any) -> None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return
    etree.SubElement(parent, _E + tag).text = str(value)


def _date(value: Any) -> str:
    return pd.Timestamp(value).date().isoformat()


def _property(parent: etree._Element, r: dict[str, Any]) -> None:
    el = etree.SubElement(parent, _E + "PropertyRight", unitNo=str(r["unit_no"]), version=str(int(r["version"])))
    _text(el, "CertificateNo", r["certificate_no"])
    _text(el, "RightType", r["right_type"])
    _text(el, "Location", r.get("location"))
    _text(el, "Area", f"{float(r['area']):.2f}")
    _text(el, "LandUse", r.get("land_use"))
    _text(el, "RegisterDate", _date(r["register_date"]))
    _text(el, "Status", r["status"])
    owner = etree.SubElement(el, _E + "Owner")
    _text(owner, "Name", r["owner_name"])
    _text(owner, "IdType", r["owner_id_type"])
    _text(owner, "IdCode", r["owner_id_code"])
    _text(owner, "Share", r.get("owner_share"))


def _approval(parent: etree._Element, r: dict[str, Any]) -> None:
    el = etree.SubElement(
        parent, _E + "ApprovalResult", approvalNo=str(r["approval_no"]), version=str(int(r["version"]))
    )
    _text(el, "ApprovalType", r["approval_type"])
    _text(el, "ProjectName", r["project_name"])
    app = etree.SubElement(el, _E + "Applicant")
    _text(app, "Name", r["applicant_name"])
    _text(app, "IdType", r["applicant_id_type"])
    _text(app, "IdCode", r["applicant_id_code"])
    etree.SubElement(el, _E + "Issuer", code=str(r["issuer_code"])).text = str(r["issuer_name"])
    _text(el, "Opinion", r["opinion"])
    _text(el, "Conclusion", r["conclusion"])
    _text(el, "IssueDate", _date(r["issue_date"]))
    _text(el, "ValidUntil", _date(r["valid_until"]))
    _text(el, "LandArea", f"{float(r['land_area']):.1f}")
    _text(el, "Location", r.get("location"))


def build_package(
    package_id: str, records: Iterable[tuple[str, dict[str, Any]]], created_at: dt.datetime
) -> etree._Element:
    """An ``ExchangePackage`` element for (kind, record) pairs; kind is ``property`` or ``approval``."""
    root = etree.Element(
        _E + "ExchangePackage", nsmap={None: NS}, packageId=package_id, createdAt=created_at.isoformat(), sender=SENDER
    )
    for kind, record in records:
        (_property if kind == "property" else _approval)(root, record)
    return root


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_package(outbox: Path, name: str, data: bytes, checksum: str | None = None) -> Path:
    """Write ``name`` and its sidecar atomically (sidecar last: a reader waits for it)."""
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / name
    tmp = outbox / f".{name}.tmp"
    tmp.write_bytes(data)
    tmp.replace(path)
    sidecar = outbox / f"{name}.sha256"
    sidecar.write_text(f"{checksum or sha256_of(data)}  {name}\n")
    return path


def serialise(root: etree._Element, encoding: str) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding=encoding, pretty_print=True))


class LandOutbox:
    """The land bureau's outbox directory of exchange packages."""

    def __init__(self, outbox_dir: Path, batch_size: int = 100, gb18030_every: int = 3) -> None:
        self.outbox_dir = Path(outbox_dir)
        self.batch_size = batch_size
        self.gb18030_every = gb18030_every

    def packages(self) -> list[Path]:
        return sorted(self.outbox_dir.glob("*.xml"))

    def _next_seq(self) -> int:
        seqs = [int(p.stem.split("_")[1]) for p in self.packages() if p.stem.split("_")[-1].isdigit()]
        return max(seqs, default=0) + 1

    def publish(
        self, property_rights: pd.DataFrame, approval_results: pd.DataFrame, created_at: dt.datetime | None = None
    ) -> list[Path]:
        """Write all records as packages of ``batch_size``; returns the new package paths."""
        records = [("property", r) for r in property_rights.to_dict("records")]
        records += [("approval", r) for r in approval_results.to_dict("records")]
        created = created_at or dt.datetime(2025, 6, 30, 18, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        written = []
        seq = self._next_seq()
        for start in range(0, len(records), self.batch_size):
            chunk = records[start : start + self.batch_size]
            encoding = "GB18030" if self.gb18030_every and seq % self.gb18030_every == 0 else "UTF-8"
            root = build_package(f"LAND-{SENDER}-{seq:06d}", chunk, created)
            written.append(write_package(self.outbox_dir, f"land_{seq:06d}.xml", serialise(root, encoding)))
            seq += 1
        return written

    def clear(self) -> None:
        if self.outbox_dir.exists():
            for p in self.outbox_dir.iterdir():
                if p.is_file():
                    p.unlink()


def validate(path: Path, xsd_path: Path = XSD_PATH) -> list[str]:
    """XSD errors of a package (empty when valid), read with a hardened parser."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    schema = etree.XMLSchema(etree.parse(str(xsd_path)))
    try:
        doc = etree.parse(str(path), parser)
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed: {exc}"]
    if doc.docinfo.doctype:
        return ["DOCTYPE not allowed in an exchange package"]
    if schema.validate(doc):
        return []
    return [str(e) for e in schema.error_log]
