"""Where a value came from (数据血缘): a licence field or a golden attribute walked back to its source.

A licence version names its source record (department, dataset, key, version, run) in its
signed document; a golden attribute names its source record in the master index. From there
the record lineage the validate step wrote (:mod:`pipeline.lineage`, tables in
:mod:`hub.models`) gives the batch — run, when it was pulled, the mapping file, its SHA-256
and the normalisers it applied to the field, the expectation suite and its version — and the
master index gives the identity link of the record (its rule, or a steward's match
probability). Nothing here reads staged copies, so the answer is the same after retention
purged them.

Personal values are masked by what they are (:mod:`hub.masking`): field values by their kind,
source keys and codes by their shape. Both the ``hub lineage`` command and
``GET /v1/licenses/{id}/lineage`` answer with :func:`license_lineage`'s dict.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from e_license_store.catalogue import UnknownLicenseType, license_type
from e_license_store.model import LicenseDocument
from hub.masking import Party, Personal, mask, mask_code, scrub_text
from hub.models import LineageBatch, LineageMapping, LineageRecord
from identity.tables import ENTERPRISE, PERSON, IdentityEnterprise, IdentityPerson, IdentitySourceRecord
from mappings.canonical.models import personal_kinds

#: licence fields a mapping fills (the others come from the catalogue or the licence service)
LICENSE_FIELDS = (
    "license_number",
    "holder_code",
    "holder_name",
    "holder_kind",
    "issue_date",
    "valid_until",
    "status",
    "issuer_code",
)


class LineageNotFound(LookupError):
    """No such licence, identity, field or attribute."""


def _iso(value: dt.datetime | None) -> str | None:
    """A stored time in ISO 8601; SQLite gives them back without their zone, which is UTC."""
    if value is None:
        return None
    return (value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)).isoformat()


def masked_key(key: str | None) -> str | None:
    """A source key as shown: a resident id or phone number in it masked, like any personal value."""
    return scrub_text(str(key)) if key is not None else None


def _base_key(source_key: str) -> str:
    """The source record's key: a licence per owner appends ``#<n>`` to it (``pipeline.publish``)."""
    head, sep, tail = source_key.rpartition("#")
    return head if sep and tail.isdigit() else source_key


def record_lineage(
    session: Session, department: str, dataset: str, source_key: str, source_version: str | None, run_id: str | None
) -> dict[str, Any] | None:
    """The batch a source record was accepted in (that run's, else the latest), with its mapping.

    An element of a record's list (an owner, ``<key>#<n>``) is traced to the record it is in."""
    rows: list[Any] = []
    for key in dict.fromkeys((source_key, _base_key(source_key))):
        rows = list(
            session.execute(
                select(LineageRecord.source_version, LineageBatch)
                .join(LineageBatch, LineageBatch.id == LineageRecord.batch_id)
                .where(
                    LineageRecord.source_key == key,
                    LineageBatch.department == department,
                    LineageBatch.dataset == dataset,
                )
            ).all()
        )
        if rows:
            break
    if not rows:
        return None

    def rank(row: Any) -> tuple[bool, bool, int]:
        version, batch = row
        return (version == (source_version or ""), batch.run_id == run_id, batch.id)

    version, batch = max(rows, key=rank)
    mapping = session.get(LineageMapping, batch.mapping_sha256)
    return {
        "source": {
            "department": department,
            "dataset": dataset,
            "source_key": masked_key(source_key),
            "source_version": version,
            "pulled_at": _iso(batch.pulled_at),
            "run_id": batch.run_id,
            "staged_ref": batch.staged_ref,
        },
        "mapping": {
            "mapping": batch.mapping,
            "file": mapping.mapping_file if mapping else None,
            "sha256": batch.mapping_sha256,
            "version": mapping.mapping_version if mapping else None,
        },
        "validation": {
            "suite": batch.suite,
            "suite_version": batch.suite_sha256[:12],
            "suite_sha256": batch.suite_sha256,
        },
        "model_version": batch.model_version,
        "runs": sorted({b.run_id for _, b in rows}),
        "_fields": dict(mapping.fields) if mapping else {},
        "_licenses": dict(mapping.licenses) if mapping else {},
    }


def identity_link(
    session: Session, department: str, dataset: str, source_key: str, canonical_code: str | None = None
) -> dict[str, Any] | None:
    """The master index's link of a source record: rule (method) or match probability, when, to whom.

    An owner named in a record is linked as ``<key>#<n>`` (``identity.resolve``); a record itself by its key."""
    link = IdentitySourceRecord
    rows: list[IdentitySourceRecord] = []
    for key in dict.fromkeys((source_key, _base_key(source_key))):
        rows = list(
            session.scalars(
                select(link).where(link.department == department, link.dataset == dataset, link.source_key == key)
            ).all()
        )
        if rows:
            break
    if not rows:
        return None

    def rank(r: IdentitySourceRecord) -> tuple[bool, bool, dt.datetime]:
        return (r.canonical_code == canonical_code, r.unlinked_at is None, r.linked_at)

    best = max(rows, key=rank)
    return {
        "entity_kind": best.entity_kind,
        "canonical_code": mask_code(best.canonical_code, person=best.entity_kind == PERSON),
        "rule": best.method,
        "match_probability": best.score,
        "linked_at": _iso(best.linked_at),
        "unlinked_at": _iso(best.unlinked_at),
    }


def _public(trace: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in trace.items() if not k.startswith("_")}


def _license_value(doc: LicenseDocument, name: str) -> Any:
    lic = doc.license
    if name.startswith("surface."):
        return lic.surface.get(name.removeprefix("surface."))
    value = getattr(lic, name, None)
    return value.isoformat() if isinstance(value, dt.date) else (str(value) if value is not None else None)


def _license_kind(doc: LicenseDocument, name: str) -> str | None:
    if name.startswith("surface."):
        try:
            return license_type(doc.license.license_type_code).personal_kinds.get(name.removeprefix("surface."))
        except UnknownLicenseType:
            return None
    return personal_kinds("license").get(name)


def license_fields(doc: LicenseDocument) -> list[str]:
    """The licence's fields lineage can answer for: those a mapping fills, and its surface."""
    return [*LICENSE_FIELDS, *(f"surface.{k}" for k in sorted(doc.license.surface))]


def license_lineage(
    session: Session,
    license_id: str,
    version: int,
    read_version: Callable[[int], LicenseDocument],
    *,
    field: str | None = None,
) -> dict[str, Any]:
    """The lineage of licence ``license_id`` at ``version`` (its fields, or only ``field``).

    ``read_version(n)`` reads version ``n``'s document from the store. A version made by hand
    (a steward's amendment, an expiry) names no source record: the latest earlier version that
    does is walked back instead, and said so (``source_of_version``).
    """
    doc = read_version(version)
    names = license_fields(doc)
    if field is not None:
        if field not in names and f"surface.{field}" in names:
            field = f"surface.{field}"  # a surface field may be named alone
        if field not in names:
            raise LineageNotFound(f"licence field {field!r} is not one of {', '.join(names)}")
        names = [field]
    sourced, n = doc, version
    while sourced.license.source is None and n > 1:
        n -= 1
        sourced = read_version(n)
    lic = doc.license
    party = Party(str(lic.holder_kind), lic.holder_code)
    out: dict[str, Any] = {
        "license_id": license_id,
        "version": version,
        "license_type_code": lic.license_type_code,
        "status": str(lic.status),
        "holder_code": mask(lic.holder_code, Personal.CODE, party=party),
        "source_of_version": n if sourced.license.source is not None else None,
        "record": None,
        "identity": None,
        "fields": {},
    }
    source = sourced.license.source
    trace: dict[str, Any] | None = None
    if source is not None:
        key = source.source_key
        trace = record_lineage(session, source.department, source.dataset, key, source.source_version, source.run_id)
        out["record"] = (
            _public(trace)
            if trace is not None
            else {
                "source": {"department": source.department, "dataset": source.dataset,
                           "source_key": masked_key(key), "source_version": source.source_version,
                           "run_id": source.run_id, "pulled_at": None, "staged_ref": source.staged_ref},
                "mapping": None, "validation": None, "model_version": None, "runs": [source.run_id],
            }
        )  # fmt: skip
        out["identity"] = identity_link(session, source.department, source.dataset, key, lic.holder_code)
    roles = (trace or {}).get("_licenses", {}).get(lic.license_type_code, {})
    fields = (trace or {}).get("_fields", {})
    for name in names:
        canonical = roles.get(name)
        applied = fields.get(canonical) if canonical else None
        out["fields"][name] = {
            "value": mask(_license_value(doc, name), _license_kind(doc, name), party=party),
            "canonical_field": canonical,
            "from": applied.get("from") if applied else None,
            "normalizers": applied.get("normalizers") if applied else None,
            # drawn from the record's canonical field, or set by the licence service or catalogue
            "origin": "mapping" if canonical else "licence service / catalogue",
        }
    return out


def identity_lineage(session: Session, code: str, *, attribute: str | None = None) -> dict[str, Any]:
    """The lineage of the golden record of ``code`` (a resident id or USCC): each golden attribute
    (or only ``attribute``), its source record, batch, mapping and normalisers, and that record's link."""
    identity: IdentityPerson | IdentityEnterprise | None = session.get(IdentityPerson, code)
    kind = PERSON
    if identity is None:
        identity = session.get(IdentityEnterprise, code)
        kind = ENTERPRISE
    if identity is None:
        raise LineageNotFound("no identity with this code")
    values = identity.attributes
    sources = identity.sources
    names = sorted(set(values) | set(sources))
    if attribute is not None:
        if attribute not in names:
            raise LineageNotFound(f"golden attribute {attribute!r} is not one of {', '.join(names)}")
        names = [attribute]
    kinds = personal_kinds(kind)
    party = Party(kind, code)
    out: dict[str, Any] = {
        "entity_kind": kind,
        "canonical_code": mask_code(code, person=kind == PERSON),
        "merged_into": mask_code(identity.merged_into, person=kind == PERSON) if identity.merged_into else None,
        "attributes": {},
    }
    for name in names:
        src = sources.get(name)
        entry: dict[str, Any] = {"value": mask(values.get(name), kinds.get(name), party=party), "record": None,
                                 "identity": None, "from": None, "normalizers": None}  # fmt: skip
        if src:
            department, dataset = str(src.get("department")), str(src.get("dataset"))
            key = str(src.get("source_key"))
            version = src.get("source_version")
            trace = record_lineage(session, department, dataset, key, None if version is None else str(version), None)
            if trace is not None:
                applied = trace["_fields"].get(name)
                entry.update(record=_public(trace), **({"from": applied.get("from"),
                             "normalizers": applied.get("normalizers")} if applied else {}))  # fmt: skip
            else:
                entry["record"] = {"source": {"department": department, "dataset": dataset,
                                              "source_key": masked_key(key), "source_version": version}}  # fmt: skip
            entry["identity"] = identity_link(session, department, dataset, key, code)
        out["attributes"][name] = entry
    return out
