"""Materials at intake (申请材料), and the once-only check (免提交): a material the hub already holds
as a valid licence of its holder is not asked for again.

For each material an item requires, in this order:

1. a licence the applicant names (``license_id``) must be the holder's — under any of their codes,
   the canonical one or a legacy code the identity cross-walk links to it — else
   ``material_not_owned`` (a licence that does not exist gets the same answer: whose licences
   exist is not revealed); then of the material's type (``material_type_mismatch``), then valid
   on the day of intake (``material_licence_not_valid``);
2. paper or an upload is taken as brought; a promise for later (容缺) only for a ``minor``
   material (``material_not_deferrable``), a written commitment (告知承诺) only where the item
   allows one (``commitment_not_allowed``);
3. a licence material not provided is looked up among the holder's valid licences of that
   type (the e-licence index, by every code of the holder) — only when the holder has
   authorised the use of their licences for this material (:mod:`cases.authorisation`): found,
   it stands for the material — its id and version are recorded, and the receiving department
   reads that reference instead of paper; not found, or not authorised, the material is
   missing (requested as paper).

A licence the applicant names needs the holder's authorisation too (``authorisation_required``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from cases.catalogue import Item, Material
from cases.errors import CaseRefused
from cases.schemas import MaterialIn, Provided
from e_license_store.index import LicenseIndexRow, get_license, newest_valid_license

LICENCE, PAPER, UPLOAD, PROMISED, COMMITMENT, MISSING, NOT_PROVIDED = (
    "licence", "paper", "upload", "promised", "commitment", "missing", "not_provided",
)  # fmt: skip
#: Why a licence material the hub may hold is still asked for
NO_AUTHORISATION = "no authorisation to use the holder's licence for this case: bring it on paper"
#: Provisions that let an intake go ahead without the material in hand.
SATISFIED = frozenset({LICENCE, PAPER, UPLOAD, PROMISED, COMMITMENT})


@dataclass(frozen=True)
class Decision:
    """How one material of a case is provided."""

    material: Material
    provision: str
    license_id: str | None = None
    license_version: int | None = None
    found_by: str | None = None
    promised_by: dt.date | None = None
    #: why it is missing when the reason is not plain absence (no authorisation to use a licence)
    reason: str | None = None
    #: the licence's index row as it was read to decide (what a new case's answer shows of it)
    licence: LicenseIndexRow | None = field(default=None, compare=False, repr=False)

    @property
    def missing(self) -> bool:
        return self.provision == MISSING


def by_code(item: Item, given: Sequence[MaterialIn]) -> dict[str, MaterialIn]:
    """The materials an intake lists, by code; an unknown or repeated code is refused."""
    out: dict[str, MaterialIn] = {}
    for entry in given:
        if item.material(entry.code) is None:
            raise CaseRefused("unknown_material", f"material {entry.code}: the item {item.code} does not require it")
        if entry.code in out:
            raise CaseRefused("unknown_material", f"material {entry.code} is listed twice")
        out[entry.code] = entry
    return out


def decide(
    session: Session,
    item: Item,
    given: Mapping[str, MaterialIn],
    holder_codes: Mapping[str, Sequence[str]],
    on: dt.date,
    *,
    authorised: Mapping[str, frozenset[str]],
    only: Sequence[str] | None = None,
) -> list[Decision]:
    """How each material of ``item`` (or of ``only`` these codes) is provided; raises :class:`CaseRefused`.

    ``holder_codes`` maps a holder (``applicant`` or a party's role) to every code of theirs;
    ``authorised`` maps a holder to the materials their authorisation covers.
    """
    out = []
    for material in item.materials:
        if only is not None and material.code not in only:
            continue
        allowed = material.code in authorised.get(material.holder, frozenset())
        codes = holder_codes.get(material.holder, ())
        out.append(_decide_one(session, material, given.get(material.code), codes, on, allowed))
    return out


def _decide_one(
    session: Session, m: Material, entry: MaterialIn | None, codes: Sequence[str], on: dt.date, authorised: bool
) -> Decision:
    if entry is not None and entry.license_id is not None:
        if not authorised:
            raise CaseRefused(
                "authorisation_required",
                f"material {m.code}: using the {m.holder}'s licence needs their authorisation for this case",
            )
        row = _named_licence(session, m, entry.license_id, codes, on)
        return Decision(m, LICENCE, row.license_id, row.version, "applicant", licence=row)
    provided = entry.provided if entry is not None else None
    if provided is Provided.promised:
        if not m.minor:
            raise CaseRefused("material_not_deferrable", f"material {m.code} cannot be promised for later (容缺)")
        return Decision(m, PROMISED, promised_by=entry.promised_by if entry else None)
    if provided is Provided.commitment:
        if not m.commitment:
            raise CaseRefused(
                "commitment_not_allowed", f"material {m.code} cannot be replaced by a commitment (告知承诺)"
            )
        return Decision(m, COMMITMENT)
    if provided in (Provided.paper, Provided.upload):
        return Decision(m, provided.value)
    if m.license_type is not None and not authorised:
        # no authorisation: the hub does not look, the holder brings it (on paper)
        return Decision(m, MISSING if m.required else NOT_PROVIDED, reason=NO_AUTHORISATION)
    if m.license_type is not None and codes:
        found = find_valid_licence(session, codes, m.license_type, on)
        if found is not None:
            return Decision(m, LICENCE, found.license_id, found.version, "hub", licence=found)
    return Decision(m, MISSING if m.required else NOT_PROVIDED)


def _named_licence(
    session: Session, m: Material, license_id: str, codes: Sequence[str], on: dt.date
) -> LicenseIndexRow:
    row = get_license(session, license_id)
    if row is None or row.holder_code not in codes:
        raise CaseRefused(
            "material_not_owned", f"material {m.code}: the licence named is not the {m.holder}'s (or does not exist)"
        )
    if m.license_type is None or row.license_type_code != m.license_type:
        wanted = f"a licence of type {m.license_type}" if m.license_type else "paper or an upload"
        raise CaseRefused("material_type_mismatch", f"material {m.code} is {wanted}, not type {row.license_type_code}")
    if not _valid_on(row, on):
        raise CaseRefused("material_licence_not_valid", f"material {m.code}: the licence named is {row.status} on {on}")
    return row


def _valid_on(row: LicenseIndexRow, on: dt.date) -> bool:
    return row.status == "valid" and row.valid_from <= on and (row.valid_until is None or row.valid_until >= on)


def find_valid_licence(session: Session, codes: Sequence[str], type_code: str, on: dt.date) -> LicenseIndexRow | None:
    """The holder's newest licence of ``type_code`` valid on ``on``, under any of their codes."""
    for code in codes:
        found = newest_valid_license(session, code, type_code, on)
        if found is not None:
            return found
    return None
