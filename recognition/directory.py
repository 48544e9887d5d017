"""Read access to the e-licence repository (电子证照库) for the API: index rows, surfaces, files, checks.

A thin edge over :mod:`e_license_store`: the index answers lists and lookups; the store
holds the sealed documents (surface fields) and rendered files; verification is the
repository's own.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from e_license_store import index
from e_license_store.index import LicenseIndexRow
from e_license_store.model import parse_envelope
from e_license_store.signing import KeyRing, load_keyring
from e_license_store.store import ObjectStore, open_store
from e_license_store.tables import LicenseFileEntry
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
        session: Session,
        holder_codes: Sequence[str],
        *,
        type_codes: Sequence[str] | None,
        status: str | None,
        valid_on: dt.date | None,
        limit: int,
        offset: int,
    ) -> list[LicenseIndexRow]:
        if len(holder_codes) == 1:
            return index.licenses_by_holder(
                session, holder_codes[0], type_codes=type_codes, status=status, valid_on=valid_on,
                limit=limit, offset=offset,
            )  # fmt: skip
        rows: list[LicenseIndexRow] = []
        for code in holder_codes:
            rows.extend(
                index.licenses_by_holder(
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


def verification_dict(result: VerificationResult) -> dict[str, Any]:
    out = result.to_dict()
    json.dumps(out)  # the API returns it as is: it must be plain JSON
    return out
