"""The tax bureau's taxpayer WebService (税务登记 WebService): SOAP 1.1 with a WSDL, by spyne.

Operations follow ``sandbox/CONTRACT.md``. The store is attached to the spyne
``Application`` (``app.tax_store``), so one service class serves any number of sandboxes.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from spyne import (
    Application,
    Array,
    Boolean,
    ComplexModel,
    Date,
    DateTime,
    Fault,
    Integer,
    ServiceBase,
    Unicode,
    rpc,
)
from spyne.protocol.soap import Soap11

from sandbox.tax.store import NOTICE_FIELDS, TaxStore, local_aware

NAMESPACE = "urn:hub:sandbox:tax"


class Taxpayer(ComplexModel):
    """A taxpayer registration (纳税人登记信息)."""

    __namespace__ = NAMESPACE
    taxpayer_code = Unicode
    taxpayer_name = Unicode
    legal_rep_id = Unicode
    legal_rep_name = Unicode
    reg_address = Unicode
    tax_authority_code = Unicode
    tax_authority_name = Unicode
    registration_date = Date
    taxpayer_status = Unicode
    credit_rating = Unicode
    updated_at = DateTime


class TaxpayerPage(ComplexModel):
    __namespace__ = NAMESPACE
    taxpayers = Array(Taxpayer)
    next_page_token = Unicode


class LicenseNotice(ComplexModel):
    """A licence event pushed by the hub (电子证照通知)."""

    __namespace__ = NAMESPACE
    idempotency_key = Unicode
    event_type = Unicode
    license_id = Unicode
    license_type_code = Unicode
    holder_code = Unicode
    holder_name = Unicode
    status = Unicode
    issued_at = DateTime
    payload_json = Unicode
    signature = Unicode


class NoticeReceipt(ComplexModel):
    __namespace__ = NAMESPACE
    accepted = Boolean
    notice_id = Unicode
    duplicate = Boolean


class ReceivedNotice(ComplexModel):
    __namespace__ = NAMESPACE
    notice_id = Unicode
    received_at = DateTime
    notice = LicenseNotice


class CaseStep(ComplexModel):
    """A step of a case dispatched to the tax bureau (涉税审批环节): 01 受理, 02 审核, 03 补正告知,
    04 补正恢复, 05 核准, 06 不予核准, 07 办结."""

    __namespace__ = NAMESPACE
    step_key = Unicode
    case_code = Unicode
    step_no = Integer
    step_code = Unicode
    step_time = DateTime
    opinion = Unicode
    missing_json = Unicode
    updated_at = DateTime


class CaseStepPage(ComplexModel):
    __namespace__ = NAMESPACE
    steps = Array(CaseStep)
    next_page_token = Unicode


def _store(ctx: Any) -> TaxStore:
    store: TaxStore = ctx.app.tax_store
    return store


def _taxpayer(record: dict[str, Any]) -> Taxpayer:
    return Taxpayer(**record)


class TaxService(ServiceBase):
    """ListChangedTaxpayers, ListCaseSteps, GetTaxpayer, ReceiveLicenseNotice, ListReceivedNotices."""

    @rpc(DateTime, Unicode, Integer, _returns=TaxpayerPage)
    def ListChangedTaxpayers(ctx, since, page_token, page_size):  # type: ignore[no-untyped-def]
        try:
            rows, token = _store(ctx).changed_since(since, page_token, page_size or 100)
        except ValueError as exc:
            raise Fault(faultcode="Client.BadPageToken", faultstring=str(exc)) from exc
        return TaxpayerPage(taxpayers=[_taxpayer(r) for r in rows], next_page_token=token)

    @rpc(DateTime, Unicode, Integer, _returns=CaseStepPage)
    def ListCaseSteps(ctx, since, page_token, page_size):  # type: ignore[no-untyped-def]
        try:
            rows, token = _store(ctx).case_steps_since(since, page_token, page_size or 100)
        except ValueError as exc:
            raise Fault(faultcode="Client.BadPageToken", faultstring=str(exc)) from exc
        return CaseStepPage(steps=[CaseStep(**r) for r in rows], next_page_token=token)

    @rpc(Unicode, _returns=Taxpayer)
    def GetTaxpayer(ctx, taxpayer_code):  # type: ignore[no-untyped-def]
        record = _store(ctx).get(taxpayer_code or "")
        if record is None:
            raise Fault(faultcode="Client.NotFound", faultstring=f"no taxpayer {taxpayer_code!r}")
        return _taxpayer(record)

    @rpc(LicenseNotice, _returns=NoticeReceipt)
    def ReceiveLicenseNotice(ctx, notice):  # type: ignore[no-untyped-def]
        if notice is None or not notice.idempotency_key:
            raise Fault(faultcode="Client.Invalid", faultstring="notice.idempotency_key is required")
        data = {f: getattr(notice, f, None) for f in NOTICE_FIELDS}
        if isinstance(data["issued_at"], dt.datetime):
            data["issued_at"] = local_aware(data["issued_at"]).isoformat()
        notice_id, duplicate = _store(ctx).receive_notice(data)
        return NoticeReceipt(accepted=True, notice_id=notice_id, duplicate=duplicate)

    @rpc(_returns=Array(ReceivedNotice))
    def ListReceivedNotices(ctx):  # type: ignore[no-untyped-def]
        out = []
        for n in _store(ctx).notices():
            fields = {f: n.get(f) for f in NOTICE_FIELDS}
            if fields["issued_at"]:
                fields["issued_at"] = dt.datetime.fromisoformat(fields["issued_at"])
            out.append(
                ReceivedNotice(
                    notice_id=n["notice_id"],
                    received_at=dt.datetime.fromisoformat(n["received_at"]),
                    notice=LicenseNotice(**fields),
                )
            )
        return out


def make_application(store: TaxStore) -> Application:
    """The spyne application for one tax sandbox."""
    # A client fault (unknown taxpayer) is an answer, not an incident: keep spyne from logging tracebacks.
    logging.getLogger("spyne.application.client").setLevel(logging.CRITICAL)
    app = Application(
        [TaxService],
        tns=NAMESPACE,
        name="TaxRegistryService",
        in_protocol=Soap11(validator="lxml"),
        out_protocol=Soap11(),
    )
    app.tax_store = store
    return app
