"""The receipt (受理回执) of a case: a one-page PDF the window hands over, with the supervision code
printed and a QR code leading to the public status page (``{HUB_VERIFY_BASE_URL}/status/{code}``).

It is drawn from the case as the reader may see it (:func:`cases.views.case_out`): without
``personal:read`` the applicant's and the agent's names and codes, phones and the delivery address
are masked by kind, like every other answer of the hub. The page machinery (CJK font, QR code,
reportlab's invariant mode: the same case read the same way gives the same bytes) is the licence
files' (:func:`e_license_store.render.draw_page`); the base of the QR link is the one licence QR
codes use (:func:`e_license_store.verify_link.base_url`).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from cases.schemas import CaseOut, MaterialOut
from e_license_store import verify_link
from e_license_store.render import draw_page
from hub.settings import get_settings

STATUS_PATH = "/status"
#: what the PDF says of itself (its subject), with the supervision code after it
SUBJECT = "hub-case-receipt"

OUTCOMES = {
    "accepted": "受理",
    "accepted_pending": "容缺受理",
    "accepted_on_commitment": "告知承诺受理",
    "correction_required": "需补正材料（一次性告知）",
    "not_accepted": "不予受理",
}
PROVISIONS = {
    "licence": "免提交（电子证照）",
    "paper": "已提交纸质材料",
    "upload": "已上传电子材料",
    "promised": "容缺后补",
    "commitment": "告知承诺",
    "missing": "待补正",
    "not_provided": "未提交（非必需）",
}
DELIVERY = {"pickup": "窗口领取", "post": "快递送达"}


def status_url(code: str, *, base: str | None = None) -> str:
    """The public status page of a case (what its receipt's QR code carries)."""
    return (base.rstrip("/") if base is not None else verify_link.base_url()) + f"{STATUS_PATH}/{code}"


def _local(at: dt.datetime) -> str:
    return at.astimezone(ZoneInfo(get_settings().source_timezone)).strftime("%Y-%m-%d %H:%M")


def _material(m: MaterialOut) -> str:
    text = PROVISIONS.get(m.provision, m.provision)
    if m.provision == "promised" and m.promised_by:
        text += f"（{m.promised_by.isoformat()} 前）"
    if m.license_id:
        text += f" {m.license_id}"
    return text


def lines(case: CaseOut) -> list[tuple[str, str]]:
    """The receipt's labelled lines, in print order."""
    out = [
        ("统一服务监管码", case.printed_code),
        ("办理事项", f"{case.item.name}（{case.item.code}）"),
        ("申请人", f"{case.applicant.name}（{case.applicant.code}）"),
    ]
    if case.agent is not None:
        out.append(("代办人", f"{case.agent.name}（{case.agent.code}）"))
    out += [
        ("收件时间", _local(case.received_at)),
        ("受理结果", OUTCOMES.get(case.intake_outcome, case.intake_outcome)),
        ("承诺时限", f"{case.item.promised_days} 个工作日（法定 {case.item.statutory_days} 个工作日）"),
        ("送达方式", DELIVERY.get(case.delivery.method, case.delivery.method)
         + (f"：{case.delivery.address}" if case.delivery.address else "")),
    ]  # fmt: skip
    out += [(f"材料 {m.code}", f"{m.name}：{_material(m)}") for m in case.materials]
    if case.missing:
        out.append(("需补正", "、".join(m.name for m in case.missing)))
    if case.reasons:
        out.append(("不予受理理由", "；".join(case.reasons)))
    for a in case.authorisations:
        out.append(("授权", f"{a.ref} 材料 {'、'.join(a.materials)} 用于{a.purpose}，至 {_local(a.valid_until)}"))
    return out


def render_receipt(case: CaseOut, *, base: str | None = None) -> bytes:
    """The receipt PDF of ``case`` (already masked as its reader may see it)."""
    return draw_page(
        title=f"受理回执 {case.printed_code}",
        heading="受理回执",
        subject=f"{SUBJECT}:{case.code}",
        author="一窗受理",
        lines=lines(case),
        stamp=None,
        qr=status_url(case.code, base=base),
        footer=[
            f"凭统一服务监管码 {case.printed_code} 随时查询办理进度；扫描二维码打开办件状态页",
            "本回执" + ("已脱敏" if case.masked else "含个人信息，请妥善保管"),
        ],
    )
