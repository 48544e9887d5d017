"""The words of the public pages, Chinese first and English (页面文字).

A page is in Chinese unless ``?lang=en`` asks for English, or the browser's ``Accept-Language``
prefers English to Chinese; ``?lang=zh`` asks for Chinese again.

>>> language(None, "en-GB,en;q=0.9,zh;q=0.5"), language(None, "zh-CN,zh;q=0.9,en;q=0.8"), language(None, "")
('en', 'zh', 'zh')
>>> language("zh", "en"), language("fr", "en-US"), language(None, "fr-FR, en;q=0.3")
('zh', 'en', 'en')
"""

from __future__ import annotations

LANGS = ("zh", "en")
HTML_LANG = {"zh": "zh-CN", "en": "en"}


def language(query: str | None, accept_language: str | None) -> str:
    """``zh`` or ``en``: the ``lang`` query parameter if it names one, else the preferred of the two
    in ``Accept-Language`` (by q-value, then order), else Chinese."""
    if query in LANGS:
        return query
    best: tuple[float, int, str] | None = None
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGS:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0 and (best is None or (q, -i) > (best[0], -best[1])):
            best = (q, i, primary)
    return best[2] if best else "zh"


TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "site": "政务数据共享交换平台",
        "title": "电子证照核验",
        "switch": "English",
        "switch_lang": "en",
        "status_heading": "核验结果",
        "status_lead": "该证照截至 {date} 的状态",
        "status_valid": "有效",
        "status_suspended": "已暂停",
        "status_revoked": "已撤销",
        "status_expired": "已过期",
        "status_note_valid": "该证照由发证机关签发，电子印章验证通过，当前有效。",
        "status_note_suspended": "该证照已被发证机关暂停使用，暂停期间不能作为有效凭证。",
        "status_note_revoked": "该证照已被发证机关撤销，不能作为有效凭证。",
        "status_note_expired": "该证照已超过有效期限，不能作为有效凭证。",
        "facts_heading": "证照信息",
        "license_type": "证照类型",
        "issuer": "发证机关",
        "issue_date": "发证日期",
        "validity": "有效期限",
        "validity_range": "{start} 至 {end}",
        "no_end": "长期",
        "holder": "持证主体",
        "holder_kind": "主体类型",
        "kind_person": "自然人",
        "kind_sole_proprietor": "个体工商户",
        "kind_enterprise": "法人或其他组织",
        "version": "版本",
        "version_current": "第 {v} 版（当前版本）",
        "version_old": "第 {v} 版（已由第 {c} 版取代，请以当前版本为准）",
        "seal_heading": "电子印章与文件",
        "seal": "电子印章",
        "seal_ok": "验证通过（{alg}，密钥 {key}）",
        "document_hash": "证照数据哈希（SHA-256）",
        "file_hash": "证照文件哈希（SHA-256）",
        "no_file": "尚未生成证照文件",
        "hash_hint": "可计算手中 PDF 文件的 SHA-256（如 sha256sum 命令）与上面的文件哈希对照；一致即为原件。",
        "privacy": "为保护个人信息，本页不显示证件号码、住址等个人信息；持证人为个人或个体工商户的，姓名已脱敏。",
        "upload_heading": "上传证照文件核验",
        "upload_intro": "也可以上传证照的 PDF 文件，核验它是否为平台签发的原件、是否被篡改。",
        "upload_label": "证照 PDF 文件（不超过 10 MB）",
        "upload_button": "核验文件",
        "upload_ok": "上传的文件与平台签发的第 {v} 版完全一致，未被篡改。",
        "upload_fail_title": "文件未通过核验",
        "upload_fail_altered": "该文件与平台的签发记录不一致：可能已被篡改，或并非本平台签发。请勿凭此文件办理业务。",
        "upload_fail_copy": "这是脱敏副本：副本不含电子印章，不能替代原件。请扫描副本上的二维码核验原件。",
        "upload_fail_not_pdf": "请上传 PDF 格式的证照文件。",
        "upload_fail_too_large": "文件过大：证照文件不超过 10 MB。",
        "upload_fail_missing": "请选择要上传的证照文件。",
        "upload_fail_form": "上传的表单无法读取，请重新选择文件后提交。",
        "home_intro": "扫描电子证照上的二维码即可打开该证照的核验结果；也可以在下方上传证照文件进行核验。",
        "not_found_title": "未找到核验信息",
        "not_found_body": "此核验链接无效或不完整。请重新扫描证照上的二维码，或上传证照文件核验。",
        "integrity_title": "暂时无法核验该证照",
        "integrity_body": "平台存储的该证照未通过电子印章校验，已通知运维人员。请联系发证机关核实。",
        "rate_limited_title": "请求过于频繁",
        "rate_limited_body": "来自您所在网络的请求过多，请稍后再试。",
        "unavailable_title": "服务暂时不可用",
        "unavailable_body": "服务暂时不可用，请稍后再试。",
        "method_title": "不支持的操作",
        "method_body": "请通过扫描二维码或下方表单进行核验。",
        "error_title": "无法完成核验",
        "error_body": "请求无法处理，请重新扫描二维码或上传证照文件。",
        "back": "返回核验首页",
        "footer": "本页由政务数据共享交换平台提供，每次核验均记入审计日志。",
        # the case status page (办件进度查询)
        "st_title": "办件进度查询",
        "st_home_intro": "输入办件回执上的统一服务监管码，查询办件的办理进度。",
        "st_code_label": "统一服务监管码（20 位，如 330322-20250612-7K3PQ0）",
        "st_lookup_button": "查询进度",
        "st_case_heading": "办件概况",
        "st_code": "监管码",
        "st_item": "办理事项",
        "st_received": "收件时间",
        "st_status": "当前状态",
        "st_held_by": "当前办理",
        "st_held_by_none": "无（已办结或已终止）",
        "st_applicant": "申请人",
        "st_window": "综合受理窗口",
        "st_applicant_holder": "申请人（待补正材料）",
        "st_stages_heading": "各部门办理环节",
        "st_window_heading": "窗口办理记录",
        "st_no_steps": "尚无办理记录",
        "st_privacy": "为保护个人信息，本页不显示证件号码、联系电话、地址和办理意见；"
        "申请人为个人或个体工商户的，姓名已脱敏。",
        "st_footer": "本页由政务数据共享交换平台提供，每次查询均记入审计日志。",
        "st_not_found_title": "未找到该办件",
        "st_not_found_body": "没有与该监管码对应的办件。请核对办件回执上的监管码后重新输入。",
        "st_check_title": "监管码有误，请核对",
        "st_check_body": "监管码的校验位不符：可能有字符输错或顺序颠倒。请核对办件回执上的监管码后重新输入。",
        "st_malformed_title": "监管码格式不正确，请核对",
        "st_malformed_body": "统一服务监管码为 20 位：6 位行政区划、8 位受理日期、5 位顺序码和 1 位校验码。"
        "请核对后重新输入。",
        "st_back": "返回进度查询",
        "case_status_in_progress": "办理中",
        "case_status_awaiting_correction": "待补正材料",
        "case_status_not_accepted": "不予受理",
        "case_status_approved": "已批准，待出证",
        "case_status_rejected": "不予批准",
        "case_status_concluded": "已办结",
        "case_status_withdrawn": "已撤回",
        "stage_waiting": "等待前序环节",
        "stage_open": "办理中",
        "stage_awaiting_correction": "待补正",
        "stage_approved": "已批准",
        "stage_rejected": "不予批准",
        "stage_concluded": "已办结",
        "step_received": "收件",
        "step_accepted": "受理",
        "step_not_accepted": "不予受理",
        "step_dispatched": "分办",
        "step_in_review": "审查中",
        "step_correction_requested": "一次性告知补正",
        "step_resumed": "补正后恢复办理",
        "step_opinion_given": "出具意见",
        "step_approved": "准予许可",
        "step_rejected": "不予许可",
        "step_result_issued": "出证",
        "step_delivered": "送达",
        "step_withdrawn": "撤回申请",
    },
    "en": {
        "site": "Government data-exchange hub",
        "title": "E-licence verification",
        "switch": "中文",
        "switch_lang": "zh",
        "status_heading": "Result",
        "status_lead": "Status of this licence as of {date}",
        "status_valid": "Valid",
        "status_suspended": "Suspended",
        "status_revoked": "Revoked",
        "status_expired": "Expired",
        "status_note_valid": "Issued by the issuing department, its electronic seal verifies: the licence is valid.",
        "status_note_suspended": "The issuing department has suspended this licence; it is not valid while suspended.",
        "status_note_revoked": "The issuing department has revoked this licence; it is no longer valid.",
        "status_note_expired": "This licence's period of validity has ended; it is no longer valid.",
        "facts_heading": "Licence",
        "license_type": "Licence type",
        "issuer": "Issuing department",
        "issue_date": "Issue date",
        "validity": "Valid",
        "validity_range": "{start} to {end}",
        "no_end": "no end date",
        "holder": "Holder",
        "holder_kind": "Holder type",
        "kind_person": "Person",
        "kind_sole_proprietor": "Individual business",
        "kind_enterprise": "Organisation",
        "version": "Version",
        "version_current": "Version {v} (current)",
        "version_old": "Version {v} (superseded by version {c}: the current version prevails)",
        "seal_heading": "Electronic seal and file",
        "seal": "Electronic seal",
        "seal_ok": "Verified ({alg}, key {key})",
        "document_hash": "Licence data hash (SHA-256)",
        "file_hash": "Licence file hash (SHA-256)",
        "no_file": "no file rendered yet",
        "hash_hint": "Compute the SHA-256 of the PDF you hold (for example with sha256sum) and compare it with the "
        "file hash above: the same value means the original.",
        "privacy": "To protect personal data this page shows no id number or address; a person's or an individual "
        "business's name is masked.",
        "upload_heading": "Verify a licence file",
        "upload_intro": "You can also upload the licence's PDF to check that it is the original the hub issued, "
        "unaltered.",
        "upload_label": "Licence PDF file (at most 10 MB)",
        "upload_button": "Verify file",
        "upload_ok": "The uploaded file is exactly version {v} as the hub issued it; it has not been altered.",
        "upload_fail_title": "The file failed verification",
        "upload_fail_altered": "This file does not match what the hub issued: it may have been altered, or the hub "
        "did not issue it. Do not accept it.",
        "upload_fail_copy": "This is a masked copy: a copy carries no seal and does not stand for the original. Scan "
        "the QR code on the copy to verify the original.",
        "upload_fail_not_pdf": "Upload the licence as a PDF file.",
        "upload_fail_too_large": "The file is too large: a licence file is at most 10 MB.",
        "upload_fail_missing": "Choose the licence file to upload.",
        "upload_fail_form": "The form could not be read; choose the file again and submit.",
        "home_intro": "Scan the QR code on an e-licence to open its verification; or upload the licence file below.",
        "not_found_title": "Nothing to verify here",
        "not_found_body": "This verification link is not valid or not complete. Scan the QR code on the licence "
        "again, or upload the licence file.",
        "integrity_title": "This licence cannot be verified now",
        "integrity_body": "The hub's stored copy of this licence failed its seal check; operators have been "
        "alerted. Please ask the issuing department.",
        "rate_limited_title": "Too many requests",
        "rate_limited_body": "Too many requests came from your network; please try again shortly.",
        "unavailable_title": "Service unavailable",
        "unavailable_body": "The service is unavailable just now; please try again shortly.",
        "method_title": "Not supported",
        "method_body": "Verify by scanning the QR code, or with the form below.",
        "error_title": "Verification could not be completed",
        "error_body": "The request could not be handled; scan the QR code again or upload the licence file.",
        "back": "Back to verification",
        "footer": "Provided by the government data-exchange hub; every verification is recorded in its audit log.",
        "st_title": "Case status",
        "st_home_intro": "Enter the supervision code printed on your receipt to see how your application is "
        "progressing.",
        "st_code_label": "Supervision code (20 characters, e.g. 330322-20250612-7K3PQ0)",
        "st_lookup_button": "Look up",
        "st_case_heading": "Case",
        "st_code": "Supervision code",
        "st_item": "Service item",
        "st_received": "Received",
        "st_status": "Status",
        "st_held_by": "Now with",
        "st_held_by_none": "nobody (concluded or ended)",
        "st_applicant": "Applicant",
        "st_window": "the service window",
        "st_applicant_holder": "the applicant (materials to supply)",
        "st_stages_heading": "Departments and their steps",
        "st_window_heading": "At the window",
        "st_no_steps": "nothing recorded yet",
        "st_privacy": "To protect personal data this page shows no id number, phone, address or department notes; a "
        "person's or an individual business's name is masked.",
        "st_footer": "Provided by the government data-exchange hub; every look-up is recorded in its audit log.",
        "st_not_found_title": "No such case",
        "st_not_found_body": "No case has this supervision code. Check the code on your receipt and enter it again.",
        "st_check_title": "Check the code",
        "st_check_body": "The code's check character does not match: a character may be mistyped or two swapped. Check "
        "the code on your receipt and enter it again.",
        "st_malformed_title": "Not a supervision code: check it",
        "st_malformed_body": "A supervision code has 20 characters: a 6-digit region, the 8-digit date received, a "
        "5-character serial and a check character. Check it and enter it again.",
        "st_back": "Back to case status",
        "case_status_in_progress": "In progress",
        "case_status_awaiting_correction": "Waiting for materials",
        "case_status_not_accepted": "Not accepted",
        "case_status_approved": "Approved, result to be issued",
        "case_status_rejected": "Rejected",
        "case_status_concluded": "Concluded",
        "case_status_withdrawn": "Withdrawn",
        "stage_waiting": "Waiting for an earlier stage",
        "stage_open": "In progress",
        "stage_awaiting_correction": "Waiting for materials",
        "stage_approved": "Approved",
        "stage_rejected": "Rejected",
        "stage_concluded": "Concluded",
        "step_received": "Received",
        "step_accepted": "Accepted",
        "step_not_accepted": "Not accepted",
        "step_dispatched": "Handed to the department",
        "step_in_review": "Under review",
        "step_correction_requested": "Materials requested",
        "step_resumed": "Resumed with the materials",
        "step_opinion_given": "Opinion given",
        "step_approved": "Approved",
        "step_rejected": "Rejected",
        "step_result_issued": "Result issued",
        "step_delivered": "Delivered",
        "step_withdrawn": "Withdrawn",
    },
}
