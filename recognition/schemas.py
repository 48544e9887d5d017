"""Request and response models of the mutual-recognition API (互认接口), so the OpenAPI is exact."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

SurfaceValue = str | int | float | bool | None
#: A subscription's region: a 2-, 4- or 6-digit administrative division code prefix.
REGION_PATTERN = r"^[0-9]{2}(?:[0-9]{2}){0,2}$"


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LicenseStatusParam(StrEnum):
    valid = "valid"
    suspended = "suspended"
    revoked = "revoked"
    expired = "expired"


class LicenseSummary(_Out):
    """A licence (电子证照) as the index knows it; personal data masked unless the scope grants it."""

    license_id: str
    license_type_code: str
    license_type_name: str
    license_number: str
    holder_code: str
    holder_kind: str
    holder_name: str
    issuer_code: str
    issuer_name: str
    issue_date: dt.date
    valid_from: dt.date
    valid_until: dt.date | None
    status: str
    version: int
    content_sha256: str = Field(description="SHA-256 of the sealed licence document of this version")


class LicenseDetail(LicenseSummary):
    key_id: str = Field(description="Seal key that signed this version")
    surface: dict[str, SurfaceValue] = Field(description="Surface fields the scope releases")
    withheld_fields: list[str] = Field(description="Surface fields the scope does not release")
    masked: bool = Field(description="Whether personal data in this answer is masked")


class Page(_Out):
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page, null on the last page")


class HolderRef(_Out):
    presented: str = Field(description="The code as presented (masked for persons)")
    canonical: str = Field(description="Resident id or USCC the hub files licences under (masked for persons)")
    resolved_via: str = Field(description="as_given, normalized or master_index")


class LicensePage(Page):
    holder: HolderRef
    masked: bool
    items: list[LicenseSummary]


class VerifyById(BaseModel):
    """Verify the repository's current version of a licence (证照核验)."""

    model_config = ConfigDict(extra="forbid")
    license_id: str = Field(min_length=1, max_length=64)


class Verification(_Out):
    ok: bool = Field(description="Authentic, known to the repository, current and valid")
    license_id: str | None
    version: int | None
    well_formed: bool
    signature_ok: bool
    hash_ok: bool
    key_id: str | None
    algorithm: str | None
    document_status: str | None
    status: str | None
    revoked: bool
    current_version: int | None
    file_sha256: str | None
    problems: list[str]


class RecognitionCheck(_Out):
    ok: bool
    signature_ok: bool
    hash_ok: bool
    problems: list[str]


class Recognition(_Out):
    """One cross-department result a department may accept without paper (跨部门结果互认)."""

    kind: str = Field(description="license or approval")
    license_id: str
    type_code: str
    type_name: str
    number: str
    issuer_code: str
    issuer_name: str
    source_department: str | None
    issue_date: dt.date
    valid_from: dt.date
    valid_until: dt.date | None
    status: str
    version: int
    verification: RecognitionCheck


class RecognitionPage(Page):
    holder: HolderRef
    as_of: dt.date
    items: list[Recognition]


class EventType(StrEnum):
    license_issued = "license.issued"
    license_amended = "license.amended"
    license_suspended = "license.suspended"
    license_reinstated = "license.reinstated"
    license_revoked = "license.revoked"
    license_expired = "license.expired"
    #: a licence whose source record its department deleted is in review (not revoked)
    license_review = "license.review"
    approval_issued = "approval.issued"
    approval_amended = "approval.amended"
    approval_revoked = "approval.revoked"
    identity_merged = "identity.merged"
    identity_split = "identity.split"
    #: a department deleted a source record: its link ended and the identity is in review
    identity_source_deleted = "identity.source_deleted"
    case_dispatched = "case.dispatched"
    case_recalled = "case.recalled"
    #: e-supervision (电子监察): a clock's change of light, a red stage's escalation (scope supervision:read)
    supervision_light_changed = "supervision.light_changed"
    supervision_escalated = "supervision.escalated"


class Channel(StrEnum):
    webhook = "webhook"
    soap = "soap"


class SubscriptionIn(BaseModel):
    """A subscription (订阅): which events, filtered by licence type and region, pushed where."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    event_types: list[EventType] = Field(min_length=1, max_length=20)
    license_types: list[str] | None = Field(default=None, max_length=50)
    regions: list[Annotated[str, Field(pattern=REGION_PATTERN)]] | None = Field(
        default=None,
        max_length=50,
        description="Division code prefixes (2, 4 or 6 digits; 330300 covers the city) matched against the "
        "holder's region, else the issuer's",
    )
    channel: Channel = Channel.webhook
    url: HttpUrl = Field(
        description="https (or http where allowed) URL of a destination allowed for the consumer; no credentials in it"
    )

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, url: HttpUrl) -> HttpUrl:
        if url.username is not None or url.password is not None:
            raise ValueError("credentials in a subscription URL are not accepted; name secrets by reference")
        return url


class SubscriptionOut(_Out):
    id: str
    name: str
    origin: str
    event_types: list[str]
    license_types: list[str] | None
    regions: list[str] | None
    channel: str
    url: str
    created_at: dt.datetime
    secret: str | None = Field(default=None, description="Webhook signing secret; shown only when created")


class SubscriptionPage(Page):
    items: list[SubscriptionOut]


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    dead = "dead"
    skipped = "skipped"
    held = "held"


class DeliveryOut(_Out):
    id: int
    subscription_id: str
    event_id: int
    event_type: str
    idempotency_key: str
    status: str
    held_back: bool = Field(description="Waiting behind a dead-lettered delivery for the same holder")
    held_by: int | None = Field(description="The dead-lettered delivery holding this one back")
    attempts: int
    next_attempt_at: dt.datetime | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None


class DeliveryPage(Page):
    items: list[DeliveryOut]


class Health(_Out):
    status: str
    database: str


class LineageSource(BaseModel):
    """The source record a value was drawn from (its key masked when it is a personal code)."""

    department: str
    dataset: str
    source_key: str | None
    source_version: str | None
    pulled_at: str | None = Field(description="When the extract staged the record's batch (ISO 8601)")
    run_id: str | None
    staged_ref: str | None = Field(description="The staged batch it was read from (retention may have purged it)")


class LineageMappingFile(BaseModel):
    mapping: str
    file: str | None
    sha256: str = Field(description="SHA-256 of the mapping file as the run applied it")
    version: int | None = Field(description="The version the mapping file declares")


class LineageValidation(BaseModel):
    suite: str
    suite_version: str = Field(description="The first 12 hex digits of suite_sha256")
    suite_sha256: str = Field(description="SHA-256 of the expectation suite's file")


class LineageSourceRecord(BaseModel):
    source: LineageSource
    mapping: LineageMappingFile | None
    validation: LineageValidation | None
    model_version: str | None = Field(description="The matching model's version, when a model linked the batch")
    runs: list[str | None] = Field(description="Every run that accepted this version of the record")


class LineageIdentityLink(BaseModel):
    entity_kind: str
    canonical_code: str | None = Field(description="The identity's code (a person's masked)")
    rule: str = Field(description="How the master index linked the record (exact, converted, crosswalk, ...)")
    match_probability: float | None = Field(description="A steward-accepted match's probability")
    linked_at: str | None
    unlinked_at: str | None


class LineageField(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    value: SurfaceValue = Field(description="The field's value, masked by its personal-data kind")
    canonical_field: str | None = Field(description="The canonical field the mapping drew it from")
    from_: list[str] | None = Field(alias="from", description="The source fields")
    normalizers: list[str] | None = Field(description="The normalisers the mapping applied, in order")
    origin: str = Field(description="mapping, or the licence service / catalogue")


class LicenseLineage(BaseModel):
    """Where a licence's fields came from (数据血缘)."""

    license_id: str
    version: int
    license_type_code: str
    status: str
    holder_code: str | None
    source_of_version: int | None = Field(description="The version whose source record this is")
    record: LineageSourceRecord | None
    identity: LineageIdentityLink | None
    fields: dict[str, LineageField]
