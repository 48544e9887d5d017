"""What goes into and comes out of the case repository: the API's request and response models
(so the OpenAPI document is exact) and what ``hub cases intake`` reads from a file."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from cases.steps import Step

Code = Annotated[str, Field(min_length=1, max_length=64, description="Resident id, USCC or a legacy code")]
Text200 = Annotated[str, Field(min_length=1, max_length=200)]
MaterialCode = Annotated[str, Field(pattern=r"^M[0-9]{2}$", description="The material's code in the item")]


class ExcludedPeriod(StrEnum):
    """Periods the Administrative Licensing Law (art. 45) keeps out of a time limit."""

    HEARING = "hearing"  # 听证
    TENDER = "tender"  # 招标
    AUCTION = "auction"  # 拍卖
    TESTING = "testing"  # 检验、检测
    QUARANTINE = "quarantine"  # 检疫
    APPRAISAL = "appraisal"  # 鉴定
    EXPERT_REVIEW = "expert_review"  # 专家评审


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicantIn(_In):
    """The applicant (申请人): a person or an enterprise, by any code the identity index knows."""

    code: Code
    name: Text200
    phone: str | None = Field(default=None, max_length=40)
    address: str | None = Field(default=None, max_length=300)


class AgentIn(_In):
    """Someone applying for the applicant (代办员), with the applicant's written authorisation recorded."""

    code: Code
    name: Text200
    phone: str | None = Field(default=None, max_length=40)
    authorisation: Text200 = Field(description="The reference of the applicant's written authorisation (授权委托书)")


class PartyIn(_In):
    """Another party the item names (e.g. ``transferor``, the seller of a property)."""

    role: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")
    code: Code
    name: Text200


class DeliveryMethod(StrEnum):
    pickup = "pickup"  # 窗口领取
    post = "post"  # 快递送达


class DeliveryIn(_In):
    method: DeliveryMethod = DeliveryMethod.pickup
    address: str | None = Field(default=None, max_length=300, description="Where to post the result")

    @model_validator(mode="after")
    def _address_to_post(self) -> DeliveryIn:
        if self.method is DeliveryMethod.post and not (self.address or "").strip():
            raise ValueError("posting the result needs an address")
        return self


class Provided(StrEnum):
    licence = "licence"  # a licence the hub holds stands for it (免提交)
    paper = "paper"
    upload = "upload"
    promised = "promised"  # 容缺: brought later, by promised_by
    commitment = "commitment"  # 告知承诺: the applicant's written commitment stands for it


class MaterialIn(_In):
    """How the applicant provides one material. Materials not listed are looked for among the
    holder's valid licences when the item allows (免提交), else they are missing."""

    code: MaterialCode
    provided: Provided | None = None
    license_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="The licence that stands for the material (the holder's)"
    )
    promised_by: dt.date | None = Field(default=None, description="容缺: the day it will be brought")

    @model_validator(mode="after")
    def _consistent(self) -> MaterialIn:
        if self.license_id is not None and self.provided not in (None, Provided.licence):
            raise ValueError("a license_id goes with provided: licence")
        if self.provided is Provided.promised and self.promised_by is None:
            raise ValueError("a promised material needs promised_by")
        return self


class AuthorisationIn(_In):
    """A holder's authorisation to use their licences for this case (授权): without one, a licence
    material of theirs is not looked up and is requested as paper."""

    holder: str = Field(
        default="applicant", pattern=r"^[a-z][a-z0-9_]{1,39}$", description="applicant or a party's role"
    )
    materials: list[MaterialCode] = Field(
        min_length=1, max_length=50, description="The licence materials of this holder it covers"
    )
    purpose: Text200 = Field(description="What the licences are used for (e.g. 企业设立登记)")
    valid_until: AwareDatetime = Field(description="Until when it is in force")
    reference: str | None = Field(
        default=None, min_length=1, max_length=200, description="The written authorisation's reference, if any"
    )


class RevokeIn(_In):
    """Revoking an authorisation (the holder withdraws consent)."""

    reason: str = Field(min_length=1, max_length=500)
    revoked_at: AwareDatetime | None = Field(default=None, description="Default: now")


class IntakeOutcomeIn(StrEnum):
    accept = "accept"
    not_accepted = "not_accepted"


class IntakeIn(_In):
    """An application at the window (一窗受理)."""

    item_code: str = Field(min_length=1, max_length=12, description="The service item (事项编码)")
    applicant: ApplicantIn
    agent: AgentIn | None = None
    parties: list[PartyIn] = Field(default_factory=list, max_length=10)
    delivery: DeliveryIn = Field(default_factory=DeliveryIn)
    subject: str | None = Field(
        default=None, max_length=500, description="What it is about (e.g. the name to register)"
    )
    materials: list[MaterialIn] = Field(default_factory=list, max_length=50)
    authorisations: list[AuthorisationIn] = Field(
        default_factory=list, max_length=10,
        description="The holders' authorisations to use their licences for this case (免提交 needs one)",
    )  # fmt: skip
    outcome: IntakeOutcomeIn = Field(
        default=IntakeOutcomeIn.accept,
        description="not_accepted: the window refuses it (不予受理) for the reasons given; else the hub works out "
        "the outcome from the materials",
    )
    reasons: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(default_factory=list, max_length=20)
    received_at: AwareDatetime | None = Field(default=None, description="When the window received it (default: now)")


class SuppliedIn(_In):
    """Materials the applicant brought after a correction request (补正)."""

    materials: list[MaterialIn] = Field(min_length=1, max_length=50)


class MissingIn(_In):
    """One missing or defective material of a correction request."""

    code: MaterialCode | None = None
    name: Text200
    reason: str | None = Field(default=None, max_length=500)


class StepIn(_In):
    """A step a department (or the window) reports; idempotent per (case, department, seq)."""

    department: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{1,39}$",
                                   description="Default: the department the key is bound to")  # fmt: skip
    seq: int = Field(ge=1, le=1_000_000, description="The department's own number of this step in the case")
    step: Step
    occurred_at: AwareDatetime = Field(description="When it happened (with its offset)")
    note: str | None = Field(default=None, max_length=2000, description="An opinion, a reason")
    missing: list[MissingIn] | None = Field(
        default=None, max_length=50, description="correction_requested: everything missing, at once (一次性告知)"
    )
    supplied: list[MaterialIn] | None = Field(
        default=None, max_length=50, description="the window's resumed: the materials the applicant brought"
    )
    period: ExcludedPeriod | None = Field(
        default=None, description="suspended: the period the law excludes from the limit (art. 45)"
    )
    days: int | None = Field(
        default=None, ge=1, le=60, description="extended: the working days granted (延期, art. 42)"
    )
    approved_by: str | None = Field(
        default=None, min_length=1, max_length=100, description="extended: who approved it (本机关负责人)"
    )
    carrier: str | None = Field(
        default=None, min_length=1, max_length=40, description="the window's delivered by post: the carrier (快递)"
    )
    tracking_number: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9-]{6,40}$", description="the window's delivered by post: its tracking number"
    )


class ItemOut(_Out):
    code: str = Field(description="Basic code (基本编码)")
    name: str
    implementation_code: str = Field(description="实施编码: basic code, level, division, lead organ")
    lead_department: str
    statutory_days: int = Field(description="法定时限 (working days)")
    promised_days: int = Field(description="承诺时限 (working days)")


class PartyOut(_Out):
    role: str
    kind: str | None = None
    code: str
    name: str
    phone: str | None = None
    address: str | None = None
    identity: str | None = Field(default=None, description="master_index or provisional")
    authorisation: str | None = None


class DeliveryOut(_Out):
    method: str
    address: str | None


class MaterialOut(_Out):
    code: str
    name: str
    required: bool
    holder: str
    license_type: str | None
    provision: str = Field(description="licence, paper, upload, promised, commitment, missing or not_provided")
    license_id: str | None = Field(description="The licence standing for it (免提交)")
    license_version: int | None
    found_by: str | None = Field(description="hub (found among the holder's valid licences) or applicant")
    promised_by: dt.date | None
    authorisation: str | None = Field(default=None, description="The authorisation the licence is used under")
    licence_status: str | None = Field(
        default=None, description="The licence's status now (valid, suspended, revoked, expired)"
    )
    flag: str | None = Field(
        default=None, description="licence_revoked (or _suspended, _expired) while the case is open: it needs a look"
    )


class AuthorisationOut(_Out):
    """A holder's authorisation of this case, as shown to the applicant."""

    ref: str
    holder: str = Field(description="applicant or a party's role")
    materials: list[str]
    licences: list[dict[str, str | int]] = Field(description="The licences (id, version, material) found under it")
    purpose: str
    reference: str | None
    granted_at: dt.datetime
    valid_until: dt.datetime
    state: str = Field(description="in_force, expired or revoked")
    revoked_at: dt.datetime | None
    revocation_reason: str | None


class MissingOut(_Out):
    code: str | None
    name: str
    reason: str | None = None


class StageOut(_Out):
    department: str
    name: str
    after: list[str]
    statutory_days: int
    promised_days: int
    state: str = Field(description="waiting, open, awaiting_correction, approved, rejected or concluded")


class StepOut(_Out):
    department: str
    seq: int
    step: str
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    actor: str
    note: str | None
    missing: list[MissingOut] | None = None
    supplied: list[str] | None = None
    reasons: list[str] | None = None
    outcome: str | None = None
    arrived_out_of_order: bool
    impossible: str | None = Field(description="Why it cannot have happened where its time puts it")


class ResultOut(_Out):
    """A licence issued for the case (its signed document carries the supervision code)."""

    license_id: str
    license_type_code: str
    license_type_name: str
    issuer_code: str
    issuer_name: str
    issue_date: dt.date
    version: int
    status: str


class PromisedOut(_Out):
    """A licence an approved stage issues (the catalogue's ``yields``), and the one issued, if any."""

    department: str
    license_type_code: str
    license_id: str | None = Field(description="The licence issued for the case; null while missing")


class ConclusionOut(_Out):
    """办结 and 出件: the outcome, the licences issued together, and how the result left the window."""

    outcome: str = Field(description="granted, or rejected (不予许可)")
    concluded_at: dt.datetime = Field(description="When the last stage concluded")
    licences: list[PromisedOut]
    missing: list[str] = Field(description="Licence types promised and not in the store under the case's code")
    flagged: bool = Field(description="Still missing after the grace period: announced to the supervision office")
    output: str | None = Field(description="pickup (at the window) or post; null while the result waits")
    output_at: dt.datetime | None
    carrier: str | None
    tracking_number: str | None


class EvaluationOut(_Out):
    """好差评: the applicant's evaluation of a concluded case."""

    code: str = Field(description="The case's supervision code")
    grade: str
    grade_name: str = Field(description="The grade's words (非常满意 … 非常不满意)")
    poor: bool = Field(description="差评: a supervisor follows it up")
    comment: str | None = Field(description="Scrubbed of ids and phone numbers unless the caller reads personal data")
    channel: str
    evaluated_at: dt.datetime
    replayed: bool = False


class CaseOut(_Out):
    """A case (办件) and its timeline: every step of every department, placed by its time."""

    code: str = Field(description="The supervision code (统一服务监管码), compact")
    printed_code: str = Field(description="As printed on the receipt")
    item: ItemOut
    status: str
    intake_outcome: str = Field(
        description="accepted 受理, accepted_pending 容缺受理, accepted_on_commitment 告知承诺, "
        "correction_required 一次性告知 (补正), not_accepted 不予受理"
    )
    received_at: dt.datetime
    received_by: str
    applicant: PartyOut
    agent: PartyOut | None
    parties: list[PartyOut]
    delivery: DeliveryOut
    subject: str | None
    materials: list[MaterialOut]
    authorisations: list[AuthorisationOut] = Field(default_factory=list)
    results: list[ResultOut] = Field(default_factory=list, description="The licences issued for this case")
    conclusion: ConclusionOut | None = Field(default=None, description="Once concluded (办结)")
    evaluation: EvaluationOut | None = Field(default=None, description="The applicant's evaluation (好差评), once left")
    flags: list[str] = Field(
        default_factory=list,
        description="What needs a look, e.g. a licence it relied on revoked since (M04:licence_revoked)",
    )
    missing: list[MissingOut] = Field(description="Everything missing, at once (一次性告知)")
    reasons: list[str] = Field(description="Why it was not accepted (不予受理)")
    stages: list[StageOut]
    held_by: list[str] = Field(description="Who holds it now: departments, applicant or window")
    timeline: list[StepOut]
    masked: bool = Field(description="Whether personal data in this answer is masked")
    replayed: bool = Field(default=False, description="An intake repeated with the same idempotency key")


class CaseSummary(_Out):
    code: str
    printed_code: str
    item_code: str
    item_name: str
    status: str
    intake_outcome: str
    received_at: dt.datetime
    applicant: PartyOut
    held_by: list[str]


class CasePage(_Out):
    holder: str = Field(description="The holder code as the hub files it (masked for persons)")
    masked: bool
    items: list[CaseSummary]
    limit: int
    offset: int
    next_offset: int | None


class StepRecorded(_Out):
    code: str
    step: StepOut
    replayed: bool = Field(description="The same step was recorded before: nothing changed")
    status: str
    held_by: list[str]


Intake = Literal["accepted", "accepted_pending", "accepted_on_commitment", "correction_required", "not_accepted"]
