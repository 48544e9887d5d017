"""Why the case repository refuses an input: one stable ``code`` per kind of bad input.

The API answers each as ``application/problem+json`` with that code (``recognition.routers.cases``);
the CLI prints it. ``kind`` says what sort of refusal it is (the API's status follows from it).
Messages never repeat a personal value (a code, a name): they name the field instead.
"""

from __future__ import annotations

from enum import StrEnum


class Refusal(StrEnum):
    INVALID = "invalid"  # 422: the input cannot be taken as it is
    CONFLICT = "conflict"  # 409: it contradicts what is already recorded
    FORBIDDEN = "forbidden"  # 403: the caller may not do this
    NOT_FOUND = "not_found"  # 404: no such case (for this caller)


class CaseRefused(ValueError):
    """An input the case repository refuses, with its stable ``code``; nothing of it was written."""

    def __init__(self, code: str, detail: str, kind: Refusal = Refusal.INVALID, *, title: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.kind = kind
        self.title = title or code.replace("_", " ").capitalize()


#: Every code the repository refuses with, and what it means (docs/api.md lists them).
CODES: dict[str, str] = {
    "unknown_item": "the item code is not in the service-item catalogue",
    "invalid_code": "an applicant's, agent's or party's code (or a holder code) is malformed",
    "applicant_unknown": "the identity index does not know the applicant and the item takes no provisional applicant",
    "applicant_kind_not_allowed": "the item is not for this kind of applicant (person, enterprise)",
    "party_missing": "the item needs a party (e.g. the seller) the intake does not name",
    "unknown_party": "the intake names a party role the item does not have",
    "unknown_material": "a material code the item does not require",
    "material_not_owned": "the licence named for a material does not exist or is not the applicant's (or the party's)",
    "material_type_mismatch": "the licence named for a material is of another type",
    "material_licence_not_valid": "the licence named for a material is not valid today",
    "material_not_deferrable": "a material promised for later (容缺) that the item does not allow to be",
    "commitment_not_allowed": "a written commitment (告知承诺) for a material the item does not allow it for",
    "reasons_required": "not accepted (不予受理) without reasons",
    "idempotency_key_reused": "the idempotency key was used for a different intake",
    "invalid_supervision_code": "a malformed supervision code (length, characters, check character, date)",
    "not_found": "no case with this code (that this caller may see)",
    "unknown_department": "the department is not in the catalogue",
    "wrong_department": "the key is bound to another department",
    "not_dispatched": "the department has no stage in this case",
    "step_not_allowed": "this step cannot be reported by this department (e.g. a department reporting received)",
    "time_in_future": "a step's (or an intake's) time lies in the future",
    "missing_list_required": "a correction request that does not list what is missing (一次性告知 lists it all)",
    "step_conflict": "a step with this department and number was recorded with different content",
    "item_not_led": "a department's own counter takes in only the items its department leads",
    "case_not_awaiting_correction": "materials supplied for a case that is not waiting for them",
    "authorisation_required": "a licence named for a material whose holder has not authorised its use for the case",
    "authorisation_holder_unknown": "an authorisation by someone who is neither the applicant nor a party named",
    "authorisation_repeated": "two authorisations by the same holder in one intake",
    "authorisation_material_invalid": "an authorisation covering what is not a licence material of its holder",
    "authorisation_expired": "an authorisation that ends before the intake (or, read later, one that has ended)",
    "authorisation_not_found": "the case has no authorisation with this reference",
    "authorisation_revoked": "the authorisation is revoked (revoking again, or reading under it)",
    "authorisation_revoked_before_granted": "a revocation dated before the authorisation was granted",
    "authorisation_missing": "no authorisation covers the material (a department reading its licence)",
    "department_key_required": "a licence of a case is read by a department-bound key (a department with a stage)",
    "material_not_a_licence": "the material of the case is not provided by a licence",
    "delivery_incomplete": "the window's delivered step names a carrier without a tracking number, or the reverse",
    "case_not_concluded": "an evaluation (好差评) of a case that is not concluded",
    "already_evaluated": "another evaluation of a case evaluated already",
    "invalid_grade": "an evaluation's grade is not one of the five",
}
