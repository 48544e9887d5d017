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
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from e_license_store import index
from e_license_store.index import LicenseIndexRow
from e_license_store.model import parse_envelope
from e_license_store.signing import KeyRing, load_keyring
from e_license_store.store import ObjectStore, open_store
from e_license_store.tables import LicenseFileEntry, LicenseIndexEntry
from e_license_store.verify import VerificationResult, verify_file, verify_license


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
        if len(holder_codes) == 1:
            return fast_licenses_by_holder(
                session, holder_codes[0], type_codes=type_codes, status=status, valid_on=valid_on,
                limit=limit, offset=offset,
            )  # fmt: skip
        rows: list[LicenseIndexRow] = []
        for code in holder_codes:
            rows.extend(
                fast_licenses_by_holder(
                    session, code, type_codes=type_codes, status=status, valid_on=valid_on, limit=limit + offset
                )
            )
        rows.sort(key=lambda r: (-r.issue_date.toordinal(), r.license_id))
        return rows[offset : offset + limit]

    def get(self, session: Session, license_id: str) -> LicenseIndexRow | None:
        return index.get_license(session, license_id)

    def surface(self, row: LicenseIndexRow) -> dict[str, Any]:
        envelope = parse_envelope(self.store.get(row.object_key))
        return dict(envelope.document.license.surface)

    def file(self, session: Session, row: LicenseIndexRow) -> LicenseFile:
        """The rendered PDF of the current version if there is one, else the sealed document itself."""
        entry = session.get(LicenseFileEntry, (row.license_id, row.version))
        if entry is not None:
            return LicenseFile(
                self.store.get(entry.file_key), "application/pdf", f"{row.license_id}-v{row.version}.pdf"
            )
        return LicenseFile(self.store.get(row.object_key), "application/json", f"{row.license_id}-v{row.version}.json")

    def verify_current(self, session: Session, row: LicenseIndexRow) -> VerificationResult:
        return verify_license(self.store.get(row.object_key), self.keyring, session=session)

    def verify_bytes(self, session: Session, data: bytes) -> VerificationResult:
        return verify_file(data, self.keyring, session=session, store=self.store)


_T = LicenseIndexEntry.__table__
_COLS = [_T.c[name] for name in LicenseIndexRow.__dataclass_fields__]


@functools.lru_cache(maxsize=16)
def _by_holder_statement(by_type: bool, by_status: bool, by_date: bool) -> Select[Any]:
    """One statement per filter shape, built once; values come as bound parameters."""
    stmt = select(*_COLS).where(_T.c.holder_code == bindparam("holder_code"))
    if by_type:
        stmt = stmt.where(_T.c.license_type_code.in_(bindparam("types", expanding=True)))
    if by_status:
        stmt = stmt.where(_T.c.status == bindparam("status"))
    if by_date:
        day = bindparam("valid_on", type_=Date())
        stmt = stmt.where(_T.c.valid_from <= day).where(or_(_T.c.valid_until.is_(None), _T.c.valid_until >= day))
    order = stmt.order_by(_T.c.issue_date.desc(), _T.c.license_id)
    return order.limit(bindparam("limit", type_=Integer())).offset(bindparam("offset", type_=Integer()))


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
    """:func:`e_license_store.index.licenses_by_holder` on SQLAlchemy Core: same filters, same order.

    The API's hot path: about five times cheaper than the ORM query (a test checks both agree).
    """
    types = list(type_codes or [])
    params: dict[str, object] = {"holder_code": holder_code, "limit": limit, "offset": offset, "types": types}
    if status:
        params["status"] = status
    if valid_on is not None:
        params["valid_on"] = valid_on
    stmt = _by_holder_statement(bool(types), bool(status), valid_on is not None)
    out = []
    for row in conn.execute(stmt, params):
        values = row._asdict()
        ts = values["updated_at"]
        if isinstance(ts, dt.datetime) and ts.tzinfo is None:  # SQLite drops the offset; stored times are UTC
            values["updated_at"] = ts.replace(tzinfo=dt.UTC)
        out.append(LicenseIndexRow(**values))
    return out


def verification_dict(result: VerificationResult) -> dict[str, Any]:
    out = result.to_dict()
    json.dumps(out)  # the API returns it as is: it must be plain JSON
    return out
