"""A licence version as signed and stored (电子证照版本): the canonical ``License`` plus its transition.

Each transition (issue, amend, suspend, reinstate, revoke, expire) produces a new
:class:`LicenseDocument`; the stored object is an *envelope* — the document and a
detached signature over the document's RFC 8785 bytes — written in canonical form
itself, so a changed byte anywhere is detectable.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from e_license_store.canonical_json import canonical_bytes, parse_canonical, sha256_hex
from e_license_store.signing import KeyRing, Signature
from mappings.canonical.models import HolderKind, License

DOCUMENT_FORMAT = "hub.e-license.v1"
#: v2 adds ``license.case_code`` (the case a licence was issued for); a v1 document has no such
#: member, and its canonical bytes — what its seal covers — are what they always were
DOCUMENT_FORMAT_V2 = "hub.e-license.v2"
FORMATS = (DOCUMENT_FORMAT, DOCUMENT_FORMAT_V2)


def document_format(lic: License) -> str:
    """The format a document of ``lic`` is written in: v2 when it carries a case, else v1."""
    return DOCUMENT_FORMAT_V2 if lic.case_code is not None else DOCUMENT_FORMAT


def license_json(lic: License) -> dict[str, Any]:
    """``lic`` as JSON for its document: without ``case_code`` when it has none (format v1)."""
    out = lic.model_dump(mode="json")
    if out.get("case_code") is None:
        out.pop("case_code", None)
    return out


class Transition(StrEnum):
    issued = "issued"
    amended = "amended"
    suspended = "suspended"
    reinstated = "reinstated"
    revoked = "revoked"
    expired = "expired"


class LicenseDraft(BaseModel):
    """What an issuing department supplies for a licence (before id, version and seal)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    license_type_code: str
    license_number: str
    holder_name: str
    holder_code: str
    holder_kind: HolderKind
    issuer_code: str
    issuer_name: str | None = Field(default=None, description="Default: the catalogue's issuer name")
    issue_date: dt.date
    valid_from: dt.date | None = Field(default=None, description="Default: the issue date")
    valid_until: dt.date | None = Field(default=None, description="Default: issue date + catalogue validity")
    surface: dict[str, Any] = Field(default_factory=dict)
    case_code: str | None = Field(
        default=None, description="The supervision code of the case the licence is issued for (format v2)"
    )


class LicenseDocument(BaseModel):
    """One signed version of a licence."""

    model_config = ConfigDict(extra="forbid")

    format: str = DOCUMENT_FORMAT
    license: License
    transition: Transition
    reason: str | None = None
    #: When the hub recorded this version (UTC); reindexing takes times from here.
    recorded_at: dt.datetime

    @model_validator(mode="after")
    def _format_matches(self) -> LicenseDocument:
        if self.format not in FORMATS:
            raise ValueError(f"unknown document format {self.format!r}")
        if self.format != document_format(self.license):
            verb = "cannot carry" if self.format == DOCUMENT_FORMAT else "needs"
            raise ValueError(f"{self.format} {verb} a case_code")
        return self

    def canonical(self) -> bytes:
        data = self.model_dump(mode="json")
        data["license"] = license_json(self.license)
        return canonical_bytes(data)


@dataclass(frozen=True)
class Envelope:
    """A stored licence version: the document, its SHA-256 and the detached signature."""

    document: LicenseDocument
    document_sha256: str
    signature: Signature
    #: the document's RFC 8785 bytes when already computed (sealing), to avoid doing it twice
    document_bytes: bytes | None = field(default=None, compare=False, repr=False)

    def to_bytes(self) -> bytes:
        doc = self.document_bytes if self.document_bytes is not None else self.document.canonical()
        # RFC 8785 orders members by key: "document" < "document_sha256" < "signature"; the
        # document's canonical bytes are spliced in rather than serialised a second time
        return b"".join(
            (
                b'{"document":',
                doc,
                b',"document_sha256":',
                canonical_bytes(self.document_sha256),
                b',"signature":',
                canonical_bytes(self.signature.to_json()),
                b"}",
            )
        )


def seal(document: LicenseDocument, keyring: KeyRing) -> Envelope:
    """Sign ``document`` with the active key (盖章)."""
    data = document.canonical()
    return Envelope(document, sha256_hex(data), keyring.sign(data), data)


def parse_envelope(data: bytes) -> Envelope:
    """Parse stored bytes (must be canonical JSON); ValueError if malformed."""
    raw = parse_canonical(data)
    if not isinstance(raw, dict) or set(raw) != {"document", "document_sha256", "signature"}:
        raise ValueError("not a licence envelope")
    try:
        document = LicenseDocument.model_validate(raw["document"])
        signature = Signature.from_json(raw["signature"])
    except Exception as exc:
        raise ValueError(f"not a licence envelope: {exc}") from exc
    return Envelope(document, str(raw["document_sha256"]), signature)


def object_key(license_id: str, version: int) -> str:
    """Where a licence version lives in the store (one object per version, never overwritten)."""
    return f"licenses/{license_id}/v{version:06d}.json"


def file_key(license_id: str, version: int) -> str:
    return f"files/{license_id}/v{version:06d}.pdf"


def binding_key(license_id: str, version: int) -> str:
    return f"files/{license_id}/v{version:06d}.binding.json"
