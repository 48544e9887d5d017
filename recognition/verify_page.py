"""What the public verification page (证照核验页) shows of a licence version, and nothing more.

Anyone holding a licence's QR code may see: whether the licence is valid, suspended, revoked or
expired *now*; its type, issuing department, issue and expiry dates; the version the code names
and whether it is the current one; whether the seal verifies and the SHA-256 of the sealed
document and of the rendered file; and the holder as the masking policy shows a party's name
(a person's or a sole proprietor's name as ``张**``, an enterprise's in full). Never a holder's
id number, an address, the licence number (a driving licence's number is its holder's resident
id) or a surface field. Everything shown is built here, from the sealed document and the index,
so the page and its audit entry cannot disagree about what was released.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from e_license_store.files import FileBinding
from e_license_store.index import LicenseIndexRow
from e_license_store.model import Envelope
from hub.masking import Party, Personal, mask

#: the states a reader is told, as of today
STATUSES = ("valid", "suspended", "revoked", "expired")
#: what the page releases (recorded with every read)
RELEASED_FIELDS = [
    "status", "license_type", "issuer", "issue_date", "valid_from", "valid_until", "version", "current_version",
    "seal_check", "document_sha256", "file_sha256", "holder_name_masked", "holder_kind",
]  # fmt: skip


def status_now(index_status: str, valid_until: dt.date | None, today: dt.date) -> str:
    """The licence's state today: the index's, or ``expired`` once its validity ended even if the
    housekeeping that records the expiry has not run yet.

    >>> status_now("valid", dt.date(2020, 1, 1), dt.date(2024, 1, 1)), status_now("valid", None, dt.date(2024, 1, 1))
    ('expired', 'valid')
    >>> status_now("revoked", dt.date(2020, 1, 1), dt.date(2024, 1, 1))
    'revoked'
    """
    if index_status == "valid" and valid_until is not None and valid_until < today:
        return "expired"
    return index_status if index_status in STATUSES else "suspended"


@dataclass(frozen=True)
class LicenceFacts:
    """One licence version as the public page shows it."""

    license_id: str
    version: int
    current_version: int
    status: str
    license_type_code: str
    license_type_name: str
    issuer_name: str
    issue_date: dt.date
    valid_from: dt.date
    valid_until: dt.date | None
    holder_kind: str
    holder_name: str
    seal_algorithm: str
    seal_key_id: str
    document_sha256: str
    file_sha256: str | None

    @property
    def is_current(self) -> bool:
        return self.version == self.current_version

    def audit_detail(self) -> dict[str, Any]:
        """What the audit entry records of the read (no personal value: the name is masked)."""
        return {
            "version": self.version, "current_version": self.current_version, "status": self.status,
            "seal_ok": True, "file_sha256": self.file_sha256,
        }  # fmt: skip


def facts(current: LicenseIndexRow, envelope: Envelope, binding: FileBinding | None, today: dt.date) -> LicenceFacts:
    """The page's facts of the version sealed in ``envelope`` (verified by the caller) of the licence
    whose current index entry is ``current``."""
    lic = envelope.document.license
    party = Party(str(lic.holder_kind), lic.holder_code)
    return LicenceFacts(
        license_id=lic.license_id,
        version=lic.version,
        current_version=current.version,
        status=status_now(current.status, current.valid_until, today),
        license_type_code=lic.license_type_code,
        license_type_name=lic.license_type_name,
        issuer_name=lic.issuer_name,
        issue_date=lic.issue_date,
        valid_from=lic.valid_from,
        valid_until=lic.valid_until,
        holder_kind="person" if party.is_person else ("sole_proprietor" if party.name_is_personal else "enterprise"),
        holder_name=str(mask(lic.holder_name, Personal.PARTY_NAME, party=party) or ""),
        seal_algorithm=envelope.signature.algorithm,
        seal_key_id=envelope.signature.key_id,
        document_sha256=envelope.document_sha256,
        file_sha256=binding.file_sha256 if binding is not None else None,
    )
