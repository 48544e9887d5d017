"""Read access to the e-licence repository (电子证照库) for the API: index rows, surfaces, files, checks.

A thin edge over :mod:`e_license_store`: the index answers lists and lookups; the store
holds the sealed documents (surface fields) and rendered files; verification is the
repository's own.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Date, Integer, Select, bindparam, or_, select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session

from e_license_store import index
from e_license_store.files import FileBinding
from e_license_store.index import LicenseIndexRow
from e_license_store.model import Envelope, LicenseDocument, binding_key, object_key
from e_license_store.signing import KeyRing, load_keyring
from e_license_store.store import ObjectStore, open_store
from e_license_store.store.base import ObjectNotFound, StoreError
from e_license_store.tables import LicenseFileEntry, LicenseIndexEntry
from e_license_store.verify import (
    IntegrityFailure,
    ReadVerifier,
    VerificationResult,
    verify_file,
    verify_license,
)
from hub.dbapi import Prepared


@dataclass(frozen=True)
class LicenseFile:
    content: bytes
    media_type: str
    filename: str


class LicenseDirectory:
    """What the API reads: ``store`` and ``keyring`` default to ``HUB_STORE_URL`` and the hub's key ring."""

    def __init__(self, store: ObjectStore | None = None, keyring: KeyRing | None = None) -> None:
        self._store = store
        self._keyring = keyring
        self._verifier: ReadVerifier | None = None

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = open_store()
        return self._store

    @property
    def keyring(self) -> KeyRing:
        if self._keyring is None:
            self._keyring = load_keyring()
        return self._keyring

    @property
    def verifier(self) -> ReadVerifier:
        if self._verifier is None:
            self._verifier = ReadVerifier(self.keyring)
        return self._verifier

    def _get(self, row: LicenseIndexRow, key: str) -> bytes:
        try:
            return self.store.get(key)
        except StoreError as exc:
            raise IntegrityFailure(row.license_id, row.version, [f"object {key} unreadable: {exc}"]) from None

    def by_holder(
        self,
        session: Session | Connection,
        holder_codes: Sequence[str],
        *,
        type_codes: Sequence[str] | None,
        status: str | None,
        valid_on: dt.date | None,
        limit: int,
        offset: int,
    ) -> list[LicenseIndexRow]:
        conn = session.connection() if isinstance(session, Session) else session
        return self.by_holder_dbapi(
            conn.connection.dbapi_connection, conn.dialect, holder_codes, type_codes=type_codes, status=status,
            valid_on=valid_on, limit=limit, offset=offset,
        )  # fmt: skip

    def by_holder_dbapi(
        self,
        dbapi_conn: Any,
        dialect: Dialect,
        holder_codes: Sequence[str],
        *,
        type_codes: Sequence[str] | None,
        status: str | None,
        valid_on: dt.date | None,
        limit: int,
        offset: int,
    ) -> list[LicenseIndexRow]:
        """The licences filed under any of ``holder_codes`` (canonical and legacy), newest first."""
        if len(holder_codes) == 1:
            return licenses_by_holder_dbapi(
                dbapi_conn, dialect, holder_codes[0], type_codes=type_codes, status=status, valid_on=valid_on,
                limit=limit, offset=offset,
            )  # fmt: skip
        rows: list[LicenseIndexRow] = []
        for code in holder_codes:
            found = licenses_by_holder_dbapi(
                dbapi_conn, dialect, code, type_codes=type_codes, status=status, valid_on=valid_on,
                limit=limit + offset,
            )  # fmt: skip
            rows.extend(found)
        rows.sort(key=lambda r: (-r.issue_date.toordinal(), r.license_id))
        return rows[offset : offset + limit]

    def get(self, session: Session, license_id: str) -> LicenseIndexRow | None:
        return index.get_license(session, license_id)

    def envelope(self, row: LicenseIndexRow) -> Envelope:
        """The stored envelope of ``row``'s version, verified (:class:`ReadVerifier`): a tampered
        object is never served (:class:`IntegrityFailure`)."""
        return self.verifier.envelope(self._get(row, row.object_key), **self._expected(row))

    def document(self, row: LicenseIndexRow) -> LicenseDocument:
        return self.envelope(row).document

    def version_document(self, row: LicenseIndexRow, version: int, content_sha256: str) -> LicenseDocument:
        """Version ``version`` of ``row``'s licence, verified like the current one: its seal and the
        SHA-256 the version log recorded for it (``content_sha256``)."""
        data = self._get(row, object_key(row.license_id, version))
        return self.verifier.envelope(
            data, license_id=row.license_id, version=version, content_sha256=content_sha256
        ).document

    def surface(self, row: LicenseIndexRow) -> dict[str, Any]:
        """The surface fields of ``row``'s verified stored version (read without building the model)."""
        data = self._get(row, row.object_key)
        self.verifier.check(data, **self._expected(row))
        surface = json.loads(data)["document"]["license"]["surface"]
        return dict(surface) if isinstance(surface, dict) else {}

    @staticmethod
    def _expected(row: LicenseIndexRow) -> dict[str, Any]:
        return {"license_id": row.license_id, "version": row.version, "content_sha256": row.content_sha256,
                "object_sha256": row.object_sha256}  # fmt: skip

    def file(self, session: Session, row: LicenseIndexRow) -> LicenseFile:
        """The rendered PDF of the current version if there is one, else the sealed document itself.

        Either is verified before it is returned: the PDF against the signed binding of its
        version, the sealed document against its signature and the index.
        """
        entry = session.get(LicenseFileEntry, (row.license_id, row.version))
        if entry is not None:
            content = self._get(row, entry.file_key)
            binding = self._get(row, binding_key(row.license_id, row.version))
            self.verifier.file(content, binding, license_id=row.license_id, version=row.version)
            return LicenseFile(content, "application/pdf", f"{row.license_id}-v{row.version}.pdf")
        data = self._get(row, row.object_key)
        self.verifier.check(data, **self._expected(row))
        return LicenseFile(data, "application/json", f"{row.license_id}-v{row.version}.json")

    def file_binding(self, row: LicenseIndexRow) -> FileBinding | None:
        """The signed binding of ``row``'s version's rendered file (its SHA-256), verified; ``None``
        while no file is rendered. A binding that fails its check raises :class:`IntegrityFailure`."""
        try:
            data = self.store.get(binding_key(row.license_id, row.version))
        except ObjectNotFound:
            return None
        except StoreError as exc:
            raise IntegrityFailure(row.license_id, row.version, [f"file binding unreadable: {exc}"]) from None
        return self.verifier.binding(data, license_id=row.license_id, version=row.version)

    def has_pdf(self, session: Session, row: LicenseIndexRow) -> bool:
        return session.get(LicenseFileEntry, (row.license_id, row.version)) is not None

    def verify_current(self, session: Session, row: LicenseIndexRow) -> VerificationResult:
        """The full verification of ``row``'s stored version; an unreadable object is a failed check."""
        try:
            data = self.store.get(row.object_key)
        except StoreError as exc:
            res = VerificationResult(license_id=row.license_id, version=row.version, status=row.status)
            res.problems.append(f"stored object unreadable: {exc}")
            return res
        return verify_license(data, self.keyring, session=session)

    def verify_bytes(self, session: Session, data: bytes) -> VerificationResult:
        return verify_file(data, self.keyring, session=session, store=self.store)


_T = LicenseIndexEntry.__table__
_COLS = [_T.c[name] for name in LicenseIndexRow.__dataclass_fields__]
_UPDATED_AT = len(_COLS) - 1
assert _COLS[_UPDATED_AT].name == "updated_at"


def _by_holder_statement(n_types: int, by_status: bool, by_date: bool) -> Select[Any]:
    """The lookup for one filter shape; values come as bound parameters (``type_0`` .. for the types)."""
    stmt = select(*_COLS).where(_T.c.holder_code == bindparam("holder_code"))
    if n_types:
        stmt = stmt.where(_T.c.license_type_code.in_([bindparam(f"type_{i}") for i in range(n_types)]))
    if by_status:
        stmt = stmt.where(_T.c.status == bindparam("status"))
    if by_date:
        day = bindparam("valid_on", type_=Date())
        stmt = stmt.where(_T.c.valid_from <= day).where(or_(_T.c.valid_until.is_(None), _T.c.valid_until >= day))
    order = stmt.order_by(_T.c.issue_date.desc(), _T.c.license_id)
    return order.limit(bindparam("limit", type_=Integer())).offset(bindparam("offset", type_=Integer()))


@functools.lru_cache(maxsize=256)
def _prepared(dialect: Dialect, n_types: int, by_status: bool, by_date: bool) -> Prepared:
    """Compiled once per dialect and filter shape (a handful in practice: type lists are short)."""
    return Prepared(_by_holder_statement(n_types, by_status, by_date), dialect)


def licenses_by_holder_dbapi(
    dbapi_conn: Any,
    dialect: Dialect,
    holder_code: str,
    *,
    type_codes: Sequence[str] | None = None,
    status: str | None = None,
    valid_on: dt.date | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[LicenseIndexRow]:
    """:func:`e_license_store.index.licenses_by_holder` on a DBAPI connection: same filters, same order.

    The API's hot path: the statement is SQLAlchemy's, compiled once, and the values are bound
    and read back through the column types' own processors (:class:`hub.dbapi.Prepared`);
    only SQLAlchemy's per-execution bookkeeping is left out. A test checks it agrees with the index.
    """
    types = list(type_codes or [])
    params: dict[str, object] = {"holder_code": holder_code, "limit": limit, "offset": offset}
    params.update((f"type_{i}", t) for i, t in enumerate(types))
    if status:
        params["status"] = status
    if valid_on is not None:
        params["valid_on"] = valid_on
    prepared = _prepared(dialect, len(types), bool(status), valid_on is not None)
    out = []
    for values in prepared.all(dbapi_conn, params):
        ts = values[_UPDATED_AT]
        if isinstance(ts, dt.datetime) and ts.tzinfo is None:  # SQLite drops the offset; stored times are UTC
            values[_UPDATED_AT] = ts.replace(tzinfo=dt.UTC)
        out.append(LicenseIndexRow(*values))
    return out


@functools.lru_cache(maxsize=8)
def _prepared_get(dialect: Dialect) -> Prepared:
    return Prepared(select(*_COLS).where(_T.c.license_id == bindparam("license_id")), dialect)


def license_by_id_dbapi(dbapi_conn: Any, dialect: Dialect, license_id: str) -> LicenseIndexRow | None:
    """:func:`e_license_store.index.get_license` on a DBAPI connection (the API's by-id read)."""
    prepared = _prepared_get(dialect)
    values = prepared.first(dbapi_conn, {"license_id": license_id})
    if values is None:
        return None
    ts = values[_UPDATED_AT]
    if isinstance(ts, dt.datetime) and ts.tzinfo is None:
        values[_UPDATED_AT] = ts.replace(tzinfo=dt.UTC)
    return LicenseIndexRow(*values)


def fast_licenses_by_holder(
    conn: Session | Connection,
    holder_code: str,
    *,
    type_codes: Sequence[str] | None = None,
    status: str | None = None,
    valid_on: dt.date | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[LicenseIndexRow]:
    """:func:`licenses_by_holder_dbapi` on the connection behind a session or SQLAlchemy connection."""
    if isinstance(conn, Session):
        conn = conn.connection()
    return licenses_by_holder_dbapi(
        conn.connection.dbapi_connection, conn.dialect, holder_code, type_codes=type_codes, status=status,
        valid_on=valid_on, limit=limit, offset=offset,
    )  # fmt: skip
