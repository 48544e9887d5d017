"""Queries over the licence index (证照索引) and keeping it in step with the store.

The recognition API builds on :func:`licenses_by_holder` and :func:`get_license`; their
signatures and :class:`LicenseIndexRow` are kept stable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from e_license_store.canonical_json import canonical_bytes, sha256_hex
from e_license_store.catalogue import load_catalogue
from e_license_store.files import parse_binding
from e_license_store.identifier import source_serial
from e_license_store.model import Envelope, LicenseDocument, object_key, parse_envelope
from e_license_store.signing import KeyRing
from e_license_store.store.base import ObjectStore
from e_license_store.tables import LicenseFileEntry, LicenseIndexEntry, LicenseVersionEntry
from hub.dbapi import prepared, session_dbapi


@dataclass(frozen=True)
class LicenseIndexRow:
    """The current state of one licence as the index knows it (no surface fields: read the store)."""

    license_id: str
    license_type_code: str
    license_type_name: str
    license_number: str
    holder_code: str
    holder_kind: str
    holder_name: str
    issuer_code: str
    issuer_name: str
    issue_date: dt.date
    valid_from: dt.date
    valid_until: dt.date | None
    status: str
    version: int
    object_key: str
    content_sha256: str
    key_id: str
    #: SHA-256 of the stored object as written (see LicenseIndexEntry.object_sha256)
    object_sha256: str | None
    updated_at: dt.datetime


_ROW_FIELDS = tuple(LicenseIndexRow.__dataclass_fields__)


_ROW_COLUMNS = tuple(getattr(LicenseIndexEntry, f) for f in _ROW_FIELDS)


def _row(entry: LicenseIndexEntry) -> LicenseIndexRow:
    return _from_tuple(tuple(getattr(entry, f) for f in _ROW_FIELDS))


def _from_tuple(values: tuple[Any, ...]) -> LicenseIndexRow:
    row = LicenseIndexRow(*values)
    if row.updated_at.tzinfo is None:  # SQLite drops the offset; every stored time is UTC
        row = dataclasses.replace(row, updated_at=row.updated_at.replace(tzinfo=dt.UTC))
    return row


_BY_HOLDER = select(*_ROW_COLUMNS).where(LicenseIndexEntry.holder_code == bindparam("holder_code"))
_BY_HOLDER_ORDER = (LicenseIndexEntry.issue_date.desc(), LicenseIndexEntry.license_id)
_BY_HOLDER_DEFAULT = _BY_HOLDER.order_by(*_BY_HOLDER_ORDER).limit(bindparam("limit")).offset(bindparam("offset"))


def licenses_by_holder(
    session: Session,
    holder_code: str,
    *,
    type_codes: Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
    valid_on: dt.date | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[LicenseIndexRow]:
    """The licences a holder (resident id or USCC) holds, newest issue first.

    ``valid_on`` keeps licences whose validity period covers that date.
    """
    # plain columns, not ORM entities, and a statement built once: this is the API's hot query
    if not type_codes and not status and valid_on is None:
        stmt = _BY_HOLDER_DEFAULT
    else:
        stmt = _BY_HOLDER
        if type_codes:
            stmt = stmt.where(LicenseIndexEntry.license_type_code.in_(list(type_codes)))
        if status:
            statuses = [status] if isinstance(status, str) else list(status)
            stmt = stmt.where(LicenseIndexEntry.status.in_(statuses))
        if valid_on is not None:
            stmt = stmt.where(LicenseIndexEntry.valid_from <= valid_on).where(
                or_(LicenseIndexEntry.valid_until.is_(None), LicenseIndexEntry.valid_until >= valid_on)
            )
        stmt = stmt.order_by(*_BY_HOLDER_ORDER).limit(bindparam("limit")).offset(bindparam("offset"))
    params = {"holder_code": holder_code, "limit": limit, "offset": offset}
    return [_from_tuple(tuple(r)) for r in session.execute(stmt, params)]


_VALID_OF_TYPE = (
    _BY_HOLDER.where(
        LicenseIndexEntry.license_type_code == bindparam("type_code"),
        LicenseIndexEntry.status == "valid",
        LicenseIndexEntry.valid_from <= bindparam("on"),
        or_(LicenseIndexEntry.valid_until.is_(None), LicenseIndexEntry.valid_until >= bindparam("on")),
    )
    .order_by(*_BY_HOLDER_ORDER)
    .limit(1)
)


def newest_valid_license(session: Session, holder_code: str, type_code: str, on: dt.date) -> LicenseIndexRow | None:
    """The holder's newest licence of ``type_code`` valid on ``on`` — ``licenses_by_holder(session, holder_code,
    type_codes=[type_code], status="valid", valid_on=on, limit=1)``, by a statement built once (intake's query)."""
    # on the DBAPI cursor of the session's transaction, prepared once (hub.dbapi): none of SQLAlchemy's
    # execution, which cost more than SQLite's own work here (it loads no entity, nothing is pending)
    raw, dialect = session_dbapi(session)
    found = prepared(_VALID_OF_TYPE, dialect).first(raw, {"holder_code": holder_code, "type_code": type_code, "on": on})
    return _from_tuple(tuple(found)) if found is not None else None


def licenses_of_source(session: Session, department: str, dataset: str, source_key: str) -> list[LicenseIndexRow]:
    """The licences a source record yields (one per type; the record's own, not its owners').

    A licence id is ``type-authority-serial+check`` with the serial a hash of the type and the record's
    place (:func:`e_license_store.identifier.make_license_id`), so the ids are found by their serial
    whoever the issuer was.
    """
    patterns = [
        LicenseIndexEntry.license_id.like(f"{code}-%-{source_serial(code, department, dataset, source_key)}_")
        for code in sorted(load_catalogue())
    ]
    stmt = select(*_ROW_COLUMNS).where(or_(*patterns)).order_by(LicenseIndexEntry.license_id)
    return [_from_tuple(tuple(r)) for r in session.execute(stmt)]


_OF_CASE = (
    select(*_ROW_COLUMNS)
    .where(LicenseIndexEntry.case_code == bindparam("case_code"))
    .order_by(LicenseIndexEntry.issue_date, LicenseIndexEntry.license_id)
)


def licenses_of_case(session: Session, case_code: str) -> list[LicenseIndexRow]:
    """The licences issued for a case (their documents carry its supervision code), oldest first."""
    return [_from_tuple(tuple(r)) for r in session.execute(_OF_CASE, {"case_code": case_code})]


def get_license(session: Session, license_id: str) -> LicenseIndexRow | None:
    entry = session.get(LicenseIndexEntry, license_id)
    return _row(entry) if entry is not None else None


_BY_ID = select(*_ROW_COLUMNS).where(LicenseIndexEntry.license_id == bindparam("license_id"))


def license_row(session: Session, license_id: str) -> LicenseIndexRow | None:
    """:func:`get_license` as one plain-column read (no entity loaded into the session: for reads
    that only show a licence's state, such as a case's materials)."""
    found = session.execute(_BY_ID, {"license_id": license_id}).first()
    return _from_tuple(tuple(found)) if found is not None else None


@dataclass(frozen=True)
class LicenseVersionRow:
    license_id: str
    version: int
    transition: str
    status: str
    reason: str | None
    object_key: str
    content_sha256: str
    key_id: str
    recorded_at: dt.datetime


def license_versions(session: Session, license_id: str) -> list[LicenseVersionRow]:
    stmt = (
        select(LicenseVersionEntry)
        .where(LicenseVersionEntry.license_id == license_id)
        .order_by(LicenseVersionEntry.version)
    )
    out = []
    for e in session.scalars(stmt):
        ts = e.recorded_at if e.recorded_at.tzinfo else e.recorded_at.replace(tzinfo=dt.UTC)
        out.append(
            LicenseVersionRow(
                e.license_id, e.version, e.transition, e.status, e.reason, e.object_key, e.content_sha256, e.key_id, ts
            )
        )
    return out


def _fingerprint_fields(document: LicenseDocument) -> dict[str, Any]:
    lic = document.license.model_dump(mode="json", exclude={"version", "previous_version", "status"})
    if lic.get("case_code") is None:  # a licence without a case keeps the fingerprint it always had
        lic.pop("case_code", None)
    source = lic.get("source") or {}
    lic["source"] = {k: source.get(k) for k in ("department", "dataset", "source_key")} if source else None
    return lic


def content_fingerprint(document: LicenseDocument) -> str:
    """What the issuer said, without version, status and run bookkeeping.

    Not a signature input. Numbers are written as the stored document writes them (RFC 8785:
    ``12000.0`` is ``12000``), so a draft and the same licence read back from the store have one
    fingerprint — a licence recovered from the store after a crash between its object write and
    its index commit is then not "changed" and amended with the same content. Every other value
    goes through the standard library's sorted ``json.dumps`` (deterministic, and an order of
    magnitude faster than the pure-Python RFC 8785 encoder), as :func:`canonical_bytes` does.
    """
    return sha256_hex(canonical_bytes(_fingerprint_fields(document)))


def legacy_content_fingerprint(document: LicenseDocument) -> str:
    """The fingerprint as indexes written before numbers were canonical hold it (``12000.0`` kept as
    written by the draft); :meth:`LicenseService` takes it as "unchanged" too, so such a licence is
    not amended once merely because its index entry predates :func:`content_fingerprint`'s form."""
    return sha256_hex(
        json.dumps(_fingerprint_fields(document), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    )


def _version_values(envelope: Envelope, key: str) -> dict[str, Any]:
    doc = envelope.document
    lic = doc.license
    return {
        "license_id": lic.license_id,
        "version": lic.version,
        "transition": doc.transition.value,
        "status": str(lic.status),
        "reason": doc.reason,
        "object_key": key,
        "content_sha256": envelope.document_sha256,
        "key_id": envelope.signature.key_id,
        "recorded_at": doc.recorded_at,
    }


def _index_values(
    envelope: Envelope, key: str, fingerprint: str | None, object_sha256: str | None = None
) -> dict[str, Any]:
    doc = envelope.document
    lic = doc.license
    return {
        "license_id": lic.license_id,
        "license_type_code": lic.license_type_code,
        "license_type_name": lic.license_type_name,
        "license_number": lic.license_number,
        "holder_code": lic.holder_code,
        "holder_kind": str(lic.holder_kind),
        "holder_name": lic.holder_name,
        "issuer_code": lic.issuer_code,
        "issuer_name": lic.issuer_name,
        "issue_date": lic.issue_date,
        "valid_from": lic.valid_from,
        "valid_until": lic.valid_until,
        "status": str(lic.status),
        "version": lic.version,
        "object_key": key,
        "content_sha256": envelope.document_sha256,
        "content_fingerprint": fingerprint or content_fingerprint(doc),
        "key_id": envelope.signature.key_id,
        "object_sha256": object_sha256,
        "case_code": lic.case_code,
        "updated_at": doc.recorded_at,
    }


def apply_envelope(
    session: Session, envelope: Envelope, key: str, *, fingerprint: str | None = None, object_sha256: str | None = None
) -> None:
    """Record a stored version in the index (in the caller's transaction); ``object_sha256`` is the
    hash of the bytes the hub itself sealed and wrote (never of bytes read back unverified)."""
    lic = envelope.document.license
    session.merge(LicenseVersionEntry(**_version_values(envelope, key)))
    current = session.get(LicenseIndexEntry, lic.license_id)
    if current is not None and current.version > lic.version:
        return
    values = _index_values(envelope, key, fingerprint, object_sha256)
    if current is None:
        session.add(LicenseIndexEntry(**values))
    else:
        for name, value in values.items():
            setattr(current, name, value)
    session.flush()


def add_fresh(session: Session, stored: Sequence[tuple[Envelope, str, str | None, str | None]]) -> None:
    """Index licences new to the index (a batch of first versions): two multi-row INSERTs.

    A licence already indexed makes the transaction fail (primary key), never a silent mix.
    """
    if not stored:
        return
    session.execute(insert(LicenseVersionEntry), [_version_values(e, k) for e, k, _, _ in stored])
    session.execute(insert(LicenseIndexEntry), [_index_values(e, k, f, h) for e, k, f, h in stored])


def add_versions(session: Session, stored: Sequence[tuple[Envelope, str, str | None, str | None]]) -> None:
    """Index new versions of licences the index holds (a batch of lifecycle moves): one multi-row
    INSERT of the versions, one UPDATE statement run for every licence — what :func:`apply_envelope`
    does for each, the index entry left alone where it already stands at a later version.

    A version already indexed makes the transaction fail (primary key), never a silent mix.
    """
    if not stored:
        return
    session.execute(insert(LicenseVersionEntry), [_version_values(e, k) for e, k, _, _ in stored])
    table = cast(Table, LicenseIndexEntry.__table__)
    values = [_index_values(e, k, f, h) for e, k, f, h in stored]
    statement = (
        update(table)
        .where(table.c.license_id == bindparam("b_license_id"), table.c.version <= bindparam("b_version"))
        .values({name: bindparam(f"b_{name}") for name in values[0] if name != "license_id"})
    )
    session.connection().execute(statement, [{f"b_{name}": v for name, v in row.items()} for row in values])


def _seal_holds(envelope: Envelope, keyring: KeyRing) -> bool:
    document = envelope.document.canonical()
    return sha256_hex(document) == envelope.document_sha256 and keyring.verify(envelope.signature, document)


def reindex(
    session: Session, store: ObjectStore, *, license_ids: Iterable[str] | None = None, keyring: KeyRing | None = None
) -> int:
    """Rebuild the index from the store (all licences, or only ``license_ids``); returns versions read.

    Files are re-linked from their stored bindings. With ``keyring``, the SHA-256 of each object
    whose seal verifies is recorded as the index's ``object_sha256`` (reads then only hash what
    they serve); an object whose seal does not verify is indexed without it, so every read checks
    it, and refuses it. Runs in the caller's transaction.
    """
    ids = None if license_ids is None else list(license_ids)
    if ids is None:
        session.execute(delete(LicenseIndexEntry))
        session.execute(delete(LicenseVersionEntry))
        session.execute(delete(LicenseFileEntry))
        prefixes = ["licenses/"]
        file_prefixes = ["files/"]
    else:
        for table in (LicenseIndexEntry, LicenseVersionEntry, LicenseFileEntry):
            session.execute(delete(table).where(table.license_id.in_(ids)))
        prefixes = [f"licenses/{i}/" for i in ids]
        file_prefixes = [f"files/{i}/" for i in ids]
    session.flush()
    count = 0
    for prefix in prefixes:
        for key in store.list_keys(prefix):
            if not key.endswith(".json"):
                continue
            data = store.get(key)
            envelope = parse_envelope(data)
            if object_key(envelope.document.license.license_id, envelope.document.license.version) != key:
                raise ValueError(f"object {key} holds another licence version")
            sealed = keyring is not None and _seal_holds(envelope, keyring)
            apply_envelope(session, envelope, key, object_sha256=hashlib.sha256(data).hexdigest() if sealed else None)
            count += 1
    for prefix in file_prefixes:
        for key in store.list_keys(prefix):
            if key.endswith(".binding.json"):
                binding = parse_binding(store.get(key))
                session.merge(
                    LicenseFileEntry(
                        license_id=binding.license_id,
                        version=binding.version,
                        file_key=binding.file_key,
                        file_sha256=binding.file_sha256,
                        binding_key=key,
                        rendered_at=binding.rendered_at,
                    )
                )
    session.flush()
    return count
