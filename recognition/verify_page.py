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
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

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


class ObjectReader(Protocol):
    """How the page reads a version's verified objects (:class:`recognition.directory.LicenseDirectory`)."""

    def envelope(self, row: LicenseIndexRow) -> Envelope: ...

    def file_binding(self, row: LicenseIndexRow) -> FileBinding | None: ...


class VerifiedVersions:
    """The verified sealed objects of the licence versions this process showed lately (已核验版本).

    A licence version is immutable: the store is write-once and the index records the SHA-256 of
    the current version's object as the hub wrote it. Once a version's envelope has been read and
    checked against that hash (and its file binding's signature verified), what the page builds
    from them cannot change, so it is remembered — keyed by licence id, version, object hash and
    sealed-document hash — for ``ttl`` seconds: a repeat view of the same version reads the index
    row (status, current version: fresh on every request) but not the store again. After ``ttl``
    the objects are read and checked again, so an object rewritten in the store is still found by
    the page (and alerted) within that time, and on every other read path at once. Versions
    without a recorded object hash (earlier versions, rows rebuilt from the store) and versions
    without a rendered file yet are never remembered: they are read and checked every time.
    """

    def __init__(self, *, ttl: float = 60.0, max_entries: int = 20_000, clock: Any = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[tuple[str, int, str, str], _Remembered] = {}
        self.hits = 0
        self.misses = 0

    def facts(
        self, reader: ObjectReader, current: LicenseIndexRow, row: LicenseIndexRow, today: dt.date
    ) -> LicenceFacts:
        """The page's facts of ``row`` (a version of the licence whose current entry is ``current``) as of
        ``today``, from its verified objects (:class:`IntegrityFailure` if a check fails)."""
        if row.object_sha256 is None:
            return facts(current, reader.envelope(row), reader.file_binding(row), today)
        key = (row.license_id, row.version, row.object_sha256, row.content_sha256)
        now = self.clock()
        found = self._entries.get(key)
        if found is None or found.until <= now:
            self.misses += 1
            envelope, binding = reader.envelope(row), reader.file_binding(row)
            if binding is None:  # no file yet: one may be rendered any moment, so nothing is remembered
                return facts(current, envelope, binding, today)
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))  # the oldest
            self._entries.pop(key, None)
            found = self._entries[key] = _Remembered(now + self.ttl, envelope, binding)
        else:
            self.hits += 1
        # what varies from view to view (the index's status and current version, the day) keys the facts
        view = (current.version, current.status, current.valid_until, today)
        shown = found.facts.get(view)
        if shown is None:
            shown = found.facts[view] = facts(current, found.envelope, found.binding, today)
        return shown


@dataclass
class _Remembered:
    until: float
    envelope: Envelope
    binding: FileBinding
    facts: dict[tuple[int, str, dt.date | None, dt.date], LicenceFacts] = field(default_factory=dict)
