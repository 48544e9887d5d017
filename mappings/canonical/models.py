"""Canonical entities (versioned). Field names say what a thing is in the domain."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from hub.masking import Personal
from identifiers.shapes import RESIDENT_ID_PATTERN, USCC_PATTERN

SCHEMA_VERSION = "1.0.0"


def personal(kind: str) -> dict[str, Any]:
    """A field's ``json_schema_extra`` declaring its personal-data kind (:class:`hub.masking.Personal`).

    The kind travels in the field's JSON Schema (``"personal": "name"``) and in
    :func:`personal_kinds`; the masking policy masks the field's values by it wherever they
    leave the hub, whatever the field is called.
    """
    return {"personal": Personal(kind).value}


class _Canonical(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, use_enum_values=True)
    entity: ClassVar[str]
    schema_version: ClassVar[str] = SCHEMA_VERSION
    #: What the master index may resolve a record of this entity to (a mapping's
    #: ``identity_kind`` must be one of them): ``person``, ``enterprise``, or ``none`` for a
    #: record that names identities only inside it. Empty: the entity is not mapped from
    #: departments (``hub mappings check`` says so).
    identity_kinds: ClassVar[tuple[str, ...]] = ()


class SourceRef(_Canonical):
    """Where a canonical record came from: provenance of every record."""

    entity: ClassVar[str] = "source_ref"
    department: str = Field(description="Department code: tax, public_security, commerce, land, ...")
    dataset: str
    source_key: str = Field(description="The record's key in the source system")
    source_version: str = Field(description="Version of the record in the source (timestamp, hash, rowversion)")
    run_id: str | None = None
    staged_ref: str | None = Field(default=None, description="Staged object (Parquet) the record was read from")


class HolderKind(StrEnum):
    person = "person"
    enterprise = "enterprise"


class PersonStatus(StrEnum):
    alive = "alive"
    deceased = "deceased"
    moved = "moved"


class Person(_Canonical):
    """A resident (自然人), identified by the 18-digit resident id (公民身份号码, GB 11643)."""

    entity: ClassVar[str] = "person"
    identity_kinds: ClassVar[tuple[str, ...]] = ("person",)
    resident_id: str | None = Field(
        default=None, pattern=RESIDENT_ID_PATTERN, json_schema_extra=personal("resident_id")
    )
    name: str | None = Field(default=None, json_schema_extra=personal("name"))
    sex: str | None = Field(default=None, description="GB/T 2261.1: 1 male, 2 female, 0 unknown, 9 unspecified")
    birth_date: dt.date | None = Field(default=None, json_schema_extra=personal("birth_date"))
    address: str | None = Field(default=None, json_schema_extra=personal("address"))
    region_code: str | None = Field(default=None, pattern=r"^[0-9]{6}$")
    ethnicity: str | None = None
    status: PersonStatus | None = None
    phone: str | None = Field(default=None, json_schema_extra=personal("phone"))
    source: SourceRef


class Enterprise(_Canonical):
    """A legal entity (法人), identified by its unified social credit code (USCC, GB 32100)."""

    entity: ClassVar[str] = "enterprise"
    identity_kinds: ClassVar[tuple[str, ...]] = ("enterprise",)
    uscc: str | None = Field(default=None, pattern=USCC_PATTERN)
    reg_no: str | None = Field(default=None, description="Old 15-digit registration number (注册号)")
    org_code: str | None = Field(default=None, description="Organisation code (组织机构代码, GB 11714), 9 chars")
    taxpayer_id: str | None = Field(default=None, description="Old 15-digit taxpayer id (税务登记号)")
    name: str | None = Field(default=None, json_schema_extra=personal("party_name"))
    legal_rep_resident_id: str | None = Field(default=None, json_schema_extra=personal("resident_id"))
    legal_rep_name: str | None = Field(default=None, json_schema_extra=personal("name"))
    enterprise_type: str | None = None
    registered_capital: float | None = Field(default=None, description="In units of 10,000 CNY (万元)")
    established_date: dt.date | None = None
    business_scope: str | None = None
    address: str | None = Field(default=None, json_schema_extra=personal("address"))
    region_code: str | None = None
    status: str | None = Field(default=None, description="active, revoked, cancelled, suspended")
    registration_authority: str | None = None
    license_issue_date: dt.date | None = Field(
        default=None, description="Issue date of the current business licence (营业执照发照日期)"
    )
    source: SourceRef


class TaxRegistration(_Canonical):
    """A tax registration (税务登记) of an enterprise."""

    entity: ClassVar[str] = "tax_registration"
    identity_kinds: ClassVar[tuple[str, ...]] = ("enterprise",)
    taxpayer_code: str = Field(description="USCC, or the old taxpayer id on legacy records")
    uscc: str | None = Field(default=None, pattern=USCC_PATTERN)
    taxpayer_name: str | None = Field(default=None, json_schema_extra=personal("party_name"))
    tax_authority_code: str | None = None
    tax_authority_name: str | None = None
    registration_date: dt.date | None = None
    taxpayer_status: str | None = Field(default=None, description="normal, abnormal, cancelled")
    credit_rating: str | None = Field(default=None, description="A, B, M, C, D")
    legal_rep_resident_id: str | None = Field(default=None, json_schema_extra=personal("resident_id"))
    legal_rep_name: str | None = Field(default=None, json_schema_extra=personal("name"))
    address: str | None = Field(default=None, json_schema_extra=personal("address"))
    source: SourceRef


class PropertyOwner(_Canonical):
    entity: ClassVar[str] = "property_owner"
    name: str | None = Field(default=None, json_schema_extra=personal("party_name"))
    holder_code: str | None = Field(
        default=None, description="Resident id, USCC or organisation code as given", json_schema_extra=personal("code")
    )
    holder_kind: HolderKind | None = None
    share: str | None = Field(
        default=None, description="Share of ownership, e.g. 共同共有, 1/2", json_schema_extra=personal("person_text")
    )


class PropertyRight(_Canonical):
    """A registered real-estate right (不动产权利) with its certificate (不动产权证书)."""

    entity: ClassVar[str] = "property_right"
    identity_kinds: ClassVar[tuple[str, ...]] = ("none",)
    unit_no: str = Field(description="Real-estate unit number (不动产单元号, 28 characters)")
    certificate_no: str | None = None
    right_type: str | None = None
    location: str | None = Field(default=None, json_schema_extra=personal("address"))
    area_m2: float | None = None
    land_use: str | None = None
    registration_date: dt.date | None = None
    owners: list[PropertyOwner] = Field(default_factory=list)
    status: str | None = Field(default=None, description="registered, cancelled, mortgaged, sealed")
    source: SourceRef


class LicenseStatus(StrEnum):
    valid = "valid"
    suspended = "suspended"
    revoked = "revoked"
    expired = "expired"


class License(_Canonical):
    """An electronic licence (电子证照), GB/T 36903-style metadata."""

    entity: ClassVar[str] = "license"
    license_id: str = Field(description="Globally unique licence identifier (GB/T 36904 spirit)")
    license_type_code: str
    license_type_name: str
    license_number: str
    holder_name: str = Field(json_schema_extra=personal("party_name"))
    holder_code: str = Field(json_schema_extra=personal("code"))
    holder_kind: HolderKind
    issuer_name: str
    issuer_code: str
    issue_date: dt.date
    valid_from: dt.date
    valid_until: dt.date | None = None
    status: LicenseStatus = LicenseStatus.valid
    surface: dict[str, Any] = Field(default_factory=dict, description="Type-specific surface fields")
    version: int = 1
    previous_version: int | None = None
    source: SourceRef | None = None
    case_code: str | None = Field(
        default=None,
        description="The supervision code (统一服务监管码, compact) of the case it was issued for; documents "
        "carrying it are format hub.e-license.v2, older ones leave it out",
    )


class ApprovalResult(_Canonical):
    """An approval result another department can accept without paper (跨部门结果互认),
    e.g. a land-use pre-review opinion (建设项目用地预审意见)."""

    entity: ClassVar[str] = "approval_result"
    identity_kinds: ClassVar[tuple[str, ...]] = ("enterprise",)
    approval_type_code: str
    approval_no: str
    project_name: str
    applicant_name: str | None = Field(default=None, json_schema_extra=personal("party_name"))
    applicant_code: str = Field(description="USCC (or legacy code as given) of the applying enterprise")
    issuer_name: str
    issuer_code: str
    opinion: str | None = None
    conclusion: str | None = Field(default=None, description="approved, approved_with_conditions, rejected")
    issue_date: dt.date
    valid_until: dt.date | None = None
    land_area_m2: float | None = None
    location: str | None = Field(default=None, json_schema_extra=personal("address"))
    source: SourceRef


class CaseStepReport(_Canonical):
    """A step of a case as a department's approval system reports it (办理环节), pulled from its system
    into the case repository's step log (``cases.ingest``)."""

    entity: ClassVar[str] = "case_step"
    identity_kinds: ClassVar[tuple[str, ...]] = ("none",)
    code: str = Field(description="The supervision code (统一服务监管码) of the case")
    department: str = Field(description="The reporting department (the service-item catalogue's key)")
    seq: int = Field(description="The department's own number of the step within the case")
    step: str = Field(description="The step in the hub's vocabulary (cases.steps.Step): accepted, approved …")
    occurred_at: str = Field(description="When it happened: ISO 8601 with its offset")
    note: str | None = Field(default=None, description="The department's opinion or reason")
    missing: str | None = Field(
        default=None, description="correction_requested: what is missing, a JSON list of {code, name} (一次性告知)"
    )


class QuarantineEntry(_Canonical):
    """A record the hub refused, as reported to operators (personal data masked)."""

    entity: ClassVar[str] = "quarantine_record"
    department: str
    dataset: str
    source_key: str | None = None
    source_version: str | None = None
    reason_code: str
    reason: str
    source_ref: str | None = None
    run_id: str | None = None
    payload: dict[str, Any] | None = None


ENTITIES: dict[str, type[_Canonical]] = {
    m.entity: m
    for m in (
        Person,
        Enterprise,
        TaxRegistration,
        PropertyRight,
        License,
        ApprovalResult,
        CaseStepReport,
        QuarantineEntry,
    )
}


def json_schema(entity: str) -> dict[str, Any]:
    """The JSON Schema of a canonical entity, with its ``$id`` carrying the schema version."""
    model = ENTITIES[entity]
    schema = model.model_json_schema()
    schema["$id"] = f"urn:hub:canonical:{entity}:{model.schema_version}"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def personal_kinds(entity: str | type[BaseModel]) -> dict[str, str]:
    """The personal-data kind of each field of a canonical entity that has one; nested list
    fields (a property's owners) as ``owners[].name``.

    >>> personal_kinds("person")["address"], personal_kinds("property_right")["owners[].name"]
    ('address', 'party_name')
    """
    model = ENTITIES[entity] if isinstance(entity, str) else entity
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get("personal"), str):
            out[name] = str(extra["personal"])
        for arg in getattr(info.annotation, "__args__", ()):
            if isinstance(arg, type) and issubclass(arg, _Canonical):
                out.update({f"{name}[].{k}": v for k, v in personal_kinds(arg).items()})
    return out
