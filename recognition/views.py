"""What a caller sees of a licence: the scopes decide which fields, the masking policy how.

Every answer built from a licence goes through here — the JSON summary and detail, the
masked copy of a file — so the list and the file of the same licence can never disagree
about what a caller may see. Kinds come from the catalogue (``personal:`` of each surface
field) and from the licence's own fields (the holder's code and name); values are masked by
:mod:`hub.masking`'s rule for their kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from e_license_store.catalogue import UnknownLicenseType, license_type, number_shown
from e_license_store.index import LicenseIndexRow
from e_license_store.model import LicenseDocument
from hub.masking import Party, Personal, mask, mask_fields
from recognition.scopes import ScopeSet


def party_of(holder_kind: str | None, holder_code: str | None) -> Party:
    return Party(str(holder_kind) if holder_kind is not None else None, holder_code)


def holder_code_shown(code: str, party: Party, personal: bool) -> str:
    return code if personal else str(mask(code, Personal.CODE, party=party) or "")


def holder_name_shown(name: str, party: Party, personal: bool) -> str:
    return name if personal else str(mask(name, Personal.PARTY_NAME, party=party) or "")


def summary(row: LicenseIndexRow, personal: bool) -> dict[str, Any]:
    """A licence's index entry as a caller sees it (the holder masked without ``personal:read``)."""
    party = party_of(row.holder_kind, row.holder_code)
    return {
        "license_id": row.license_id,
        "license_type_code": row.license_type_code,
        "license_type_name": row.license_type_name,
        "license_number": number_shown(row.license_type_code, row.license_number, personal),
        "holder_code": holder_code_shown(row.holder_code, party, personal),
        "holder_kind": row.holder_kind,
        "holder_name": holder_name_shown(row.holder_name, party, personal),
        "issuer_code": row.issuer_code,
        "issuer_name": row.issuer_name,
        "issue_date": row.issue_date,
        "valid_from": row.valid_from,
        "valid_until": row.valid_until,
        "status": row.status,
        "version": row.version,
        "content_sha256": row.content_sha256,
    }


@dataclass(frozen=True)
class Released:
    """The surface fields a caller gets (masked unless ``personal:read``) and those withheld."""

    surface: dict[str, Any]
    withheld: list[str]
    masked: bool

    @property
    def complete(self) -> bool:
        """Everything, unmasked: only then may the original (sealed) file be handed out."""
        return not self.withheld and not self.masked


def release(type_code: str, surface: dict[str, Any], party: Party, scopes: ScopeSet) -> Released:
    """The surface fields ``scopes`` release, each masked by its catalogue kind without ``personal:read``.

    A field the catalogue does not know (an unknown type, a field added later) is withheld:
    its kind cannot be known, so it cannot be masked by it.
    """
    try:
        kinds = license_type(type_code).personal_kinds
    except UnknownLicenseType:
        kinds = {}
    released = {k: v for k, v in surface.items() if k in kinds and scopes.field_allowed(k)}
    withheld = sorted(k for k in surface if k not in released)
    if not scopes.personal:
        released = mask_fields(released, kinds, party=party)
    clean = {k: (v if isinstance(v, str | int | float | bool) or v is None else str(v)) for k, v in released.items()}
    return Released(clean, withheld, masked=not scopes.personal)


@dataclass(frozen=True)
class ReleasedDocument:
    """:class:`Released` surface of a licence document, with its holder and number as the caller sees them."""

    released: Released
    holder_name: str
    holder_code: str
    license_number: str


def release_document(document: LicenseDocument, scopes: ScopeSet) -> ReleasedDocument:
    """:func:`release` of a licence document, with its holder's name and code and its number as the caller sees them."""
    lic = document.license
    party = party_of(str(lic.holder_kind), lic.holder_code)
    released = release(lic.license_type_code, dict(lic.surface), party, scopes)
    return ReleasedDocument(
        released,
        holder_name_shown(lic.holder_name, party, scopes.personal),
        holder_code_shown(lic.holder_code, party, scopes.personal),
        number_shown(lic.license_type_code, lic.license_number, scopes.personal),
    )
