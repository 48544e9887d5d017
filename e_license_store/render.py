"""The licence file (证照文件): a PDF of the licence surface with CJK text and a QR code.

Rendering is kept off the issuing path: :func:`render_pending_files` (an Airflow task)
renders the current version of every licence that has no file yet, and
:func:`ensure_file` renders one on first request. Either way the PDF goes to the store
once, a signed binding (licence id, version, file SHA-256) beside it, and a row in
``license_file``. PDFs are rendered with reportlab's *invariant* mode, so the same
version always yields the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import qrcode
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from e_license_store import verify_link
from e_license_store.catalogue import license_type, number_shown
from e_license_store.files import bind_file, parse_binding
from e_license_store.model import LicenseDocument, binding_key, file_key, parse_envelope
from e_license_store.signing import KeyRing, load_keyring
from e_license_store.store import open_store
from e_license_store.store.base import ObjectExists, ObjectStore
from e_license_store.tables import LicenseFileEntry, LicenseIndexEntry
from hub.db import get_engine, session_factory

DEFAULT_FONT = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
FONT_NAME = "HubCJK"
_STATUS_STAMP = {"suspended": "已暂停", "revoked": "已撤销", "expired": "已过期"}
#: the PDF subject of a masked copy (the original's is ``hub-license:<id>:v<n>``)
COPY_SUBJECT = "hub-license-copy"
COPY_FORMAT = "hub.e-license.copy.v1"


@lru_cache(maxsize=1)
def register_font() -> str:
    path = os.environ.get("HUB_CJK_FONT", DEFAULT_FONT)
    if not os.path.exists(path):
        raise FileNotFoundError(f"CJK TrueType font missing: {path} (Debian fonts-wqy-zenhei; make installs it)")
    pdfmetrics.registerFont(TTFont(FONT_NAME, path, subfontIndex=0))
    return FONT_NAME


def verification_url(license_id: str, version: int) -> str:
    """Where a reader of the QR code verifies the licence: the public verification page
    (``HUB_VERIFY_BASE_URL``/verify/…, with the version's token, see :mod:`e_license_store.verify_link`)."""
    return verify_link.url(license_id, version)


def qr_payload(license_id: str, version: int) -> str:
    """What the QR code of a licence version (its original and its masked copies) carries."""
    return verification_url(license_id, version)


def _draw_qr(canvas: Canvas, data: str, x: float, y: float, size: float) -> None:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
    qr.add_data(data)
    qr.make(fit=True)
    matrix = qr.get_matrix()
    cell = size / len(matrix)
    canvas.setFillColorRGB(0, 0, 0)
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                canvas.rect(x + c * cell, y + size - (r + 1) * cell, cell, cell, stroke=0, fill=1)


def _licence_lines(
    document: LicenseDocument, *, holder_name: str, holder_code: str, license_number: str, surface: dict[str, Any]
) -> list[tuple[str, str]]:
    lic = document.license
    ltype = license_type(lic.license_type_code)
    lines: list[tuple[str, str]] = [
        ("证照编号", license_number),
        ("证照标识", lic.license_id),
        ("持证主体", holder_name),
        ("统一社会信用代码" if str(lic.holder_kind) == "enterprise" else "公民身份号码", holder_code),
    ]
    labels = {f.name: f.label for f in ltype.surface_fields}
    for name, value in surface.items():
        if value not in (None, ""):
            lines.append((labels.get(name, name), str(value)))
    lines += [
        ("发证机关", f"{lic.issuer_name}（{lic.issuer_code}）"),
        ("发证日期", lic.issue_date.isoformat()),
        ("有效期限", f"{lic.valid_from.isoformat()} 至 {lic.valid_until.isoformat() if lic.valid_until else '长期'}"),
        ("版本", f"第 {lic.version} 版"),
    ]
    return lines


def _wrapped(text: str, font: str, size: float, width: float) -> list[str]:
    """``text`` cut into lines no wider than ``width`` points."""
    out = []
    while text:
        n = len(text)
        while n > 1 and pdfmetrics.stringWidth(text[:n], font, size) > width:
            n -= 1
        out.append(text[:n])
        text = text[n:]
    return out


def draw_page(
    *,
    title: str,
    heading: str,
    subject: str,
    author: str,
    lines: list[tuple[str, str]],
    stamp: str | None,
    qr: str,
    footer: list[str],
    watermark: str | None = None,
) -> bytes:
    """One A4 page: heading, labelled lines (long values wrapped), a stamp, the QR code, a footer.

    Licence files and masked copies are drawn with it, and so is a case's receipt
    (:mod:`cases.receipt`): one look for every paper the hub prints."""
    font = register_font()
    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=A4, invariant=1)
    canvas.setTitle(title)
    canvas.setSubject(subject)
    canvas.setAuthor(author)
    width, height = A4
    if watermark:
        canvas.saveState()
        canvas.setFillColorRGB(0.85, 0.85, 0.85)
        canvas.setFont(font, 120)
        canvas.translate(width / 2, height / 2)
        canvas.rotate(35)
        canvas.drawCentredString(0, 0, watermark)
        canvas.restoreState()
    canvas.setFont(font, 26)
    canvas.drawCentredString(width / 2, height - 40 * mm, heading)
    canvas.setFont(font, 11)
    y = height - 60 * mm
    for label, value in lines:
        canvas.drawString(25 * mm, y, f"{label}：")
        for part in _wrapped(value, font, 11, width - 85 * mm):  # long surface values (经营范围)
            canvas.drawString(60 * mm, y, part)
            y -= 7 * mm
        y -= 2 * mm
    if stamp:
        canvas.setFillColorRGB(0.8, 0, 0)
        canvas.setFont(font, 40)
        canvas.drawCentredString(width / 2, 60 * mm, stamp)
    _draw_qr(canvas, qr, width - 60 * mm, 20 * mm, 40 * mm)
    canvas.setFillColorRGB(0, 0, 0)
    canvas.setFont(font, 8)
    y = 22 * mm
    for text in footer:
        for part in _wrapped(text, font, 8, width - 95 * mm):
            canvas.drawString(25 * mm, y, part)
            y -= 5 * mm
    canvas.showPage()
    canvas.save()
    return buf.getvalue()


def render_pdf(document: LicenseDocument, key_id: str) -> bytes:
    """The PDF of one licence version (deterministic for the same document)."""
    lic = document.license
    return draw_page(
        title=f"{lic.license_type_name} {lic.license_number}",
        heading=lic.license_type_name,
        subject=f"hub-license:{lic.license_id}:v{lic.version}",
        author=lic.issuer_name,
        lines=_licence_lines(
            document,
            holder_name=lic.holder_name,
            holder_code=lic.holder_code,
            license_number=lic.license_number,
            surface=lic.surface,
        ),
        stamp=_STATUS_STAMP.get(str(lic.status)),
        qr=qr_payload(lic.license_id, lic.version),
        footer=[f"电子印章 SM2/SM3 · 密钥 {key_id}", "扫描二维码核验本证照"],
    )


#: what a masked copy says of itself (副本): it carries no seal and cannot stand for the original
COPY_NOTICE = "副本：经脱敏处理，不含电子印章，不能替代原件使用；扫描二维码核验原件"


def render_copy_pdf(
    document: LicenseDocument,
    *,
    holder_name: str,
    holder_code: str,
    surface: dict[str, Any],
    license_number: str | None = None,
) -> bytes:
    """A masked copy (副本) of one licence version for a reader not entitled to every value.

    It shows what the caller may see (``holder_*``, ``license_number`` and ``surface`` already
    masked and filtered by the caller's scopes; a number not given is masked by its type's kind),
    says it is a copy, names the original's id and version,
    and its QR code leads to the original's verification. It is not sealed and no binding
    is written for it; :func:`e_license_store.verify.verify_file` recognises it as a copy.
    """
    lic = document.license
    number = (
        license_number if license_number is not None else number_shown(lic.license_type_code, lic.license_number, False)
    )
    return draw_page(
        title=f"{lic.license_type_name}（副本） {number}",
        heading=f"{lic.license_type_name}（副本）",
        subject=f"{COPY_SUBJECT}:{lic.license_id}:v{lic.version}",
        author=lic.issuer_name,
        lines=_licence_lines(
            document, holder_name=holder_name, holder_code=holder_code, license_number=number, surface=surface
        ),
        stamp=_STATUS_STAMP.get(str(lic.status)),
        qr=qr_payload(lic.license_id, lic.version),
        footer=[
            COPY_NOTICE,
            f"原件：{lic.license_id} 第 {lic.version} 版 · {verification_url(lic.license_id, lic.version)}",
        ],
        watermark="副本",
    )


def copy_document(
    document: LicenseDocument,
    *,
    content_sha256: str,
    holder_name: str,
    holder_code: str,
    surface: dict[str, Any],
    withheld: list[str],
    license_number: str | None = None,
) -> dict[str, Any]:
    """The JSON form of a masked copy (副本), for a licence whose file is its sealed document."""
    lic = document.license
    return {
        "format": COPY_FORMAT,
        "notice": COPY_NOTICE,
        "copy_of": {"license_id": lic.license_id, "version": lic.version, "content_sha256": content_sha256},
        "verification_url": verification_url(lic.license_id, lic.version),
        "license": {
            "license_id": lic.license_id,
            "version": lic.version,
            "license_type_code": lic.license_type_code,
            "license_type_name": lic.license_type_name,
            "license_number": license_number
            if license_number is not None
            else number_shown(lic.license_type_code, lic.license_number, False),
            "holder_kind": str(lic.holder_kind),
            "holder_name": holder_name,
            "holder_code": holder_code,
            "issuer_code": lic.issuer_code,
            "issuer_name": lic.issuer_name,
            "issue_date": lic.issue_date.isoformat(),
            "valid_from": lic.valid_from.isoformat(),
            "valid_until": lic.valid_until.isoformat() if lic.valid_until else None,
            "status": str(lic.status),
            "surface": surface,
        },
        "withheld_fields": withheld,
    }


@dataclass(frozen=True)
class RenderedFile:
    license_id: str
    version: int
    file_key: str
    file_sha256: str


def _render_one(
    session: Session, store: ObjectStore, keyring: KeyRing, entry: LicenseIndexEntry, clock: Callable[[], dt.datetime]
) -> RenderedFile:
    env = parse_envelope(store.get(entry.object_key))
    fkey = file_key(entry.license_id, entry.version)
    pdf = render_pdf(env.document, env.signature.key_id)
    try:
        store.put(fkey, pdf, content_type="application/pdf")
    except ObjectExists:
        pdf = store.get(fkey)  # rendered before a crash: keep what is stored
    sha = hashlib.sha256(pdf).hexdigest()
    bkey = binding_key(entry.license_id, entry.version)
    rendered_at = clock()
    try:
        store.put(
            bkey,
            bind_file(keyring, entry.license_id, entry.version, fkey, sha, rendered_at).to_bytes(),
            content_type="application/json",
        )
    except ObjectExists:
        rendered_at = parse_binding(store.get(bkey)).rendered_at
    session.merge(
        LicenseFileEntry(
            license_id=entry.license_id,
            version=entry.version,
            file_key=fkey,
            file_sha256=sha,
            binding_key=bkey,
            rendered_at=rendered_at,
        )
    )
    session.commit()
    return RenderedFile(entry.license_id, entry.version, fkey, sha)


def _defaults(
    store: ObjectStore | None, sessions: sessionmaker[Session] | None, keyring: KeyRing | None
) -> tuple[ObjectStore, sessionmaker[Session], KeyRing]:
    return store or open_store(), sessions or session_factory(get_engine()), keyring or load_keyring(create=True)


def render_pending_files(
    *,
    store: ObjectStore | None = None,
    sessions: sessionmaker[Session] | None = None,
    keyring: KeyRing | None = None,
    limit: int = 1000,
    clock: Callable[[], dt.datetime] | None = None,
) -> int:
    """Render the current version of every licence without a file (a DAG task); returns how many."""
    store, sessions, keyring = _defaults(store, sessions, keyring)
    now = clock or (lambda: dt.datetime.now(dt.UTC))
    with sessions() as session:
        pending = list(
            session.scalars(
                select(LicenseIndexEntry)
                .outerjoin(
                    LicenseFileEntry,
                    (LicenseFileEntry.license_id == LicenseIndexEntry.license_id)
                    & (LicenseFileEntry.version == LicenseIndexEntry.version),
                )
                .where(LicenseFileEntry.license_id.is_(None))
                .order_by(LicenseIndexEntry.license_id)
                .limit(limit)
            )
        )
        for entry in pending:
            _render_one(session, store, keyring, entry, now)
    return len(pending)


def ensure_file(
    license_id: str,
    *,
    store: ObjectStore | None = None,
    sessions: sessionmaker[Session] | None = None,
    keyring: KeyRing | None = None,
) -> tuple[RenderedFile, bytes]:
    """The current version's PDF, rendered now if it has none yet (first request), then kept."""
    store, sessions, keyring = _defaults(store, sessions, keyring)
    with sessions() as session:
        entry = session.get(LicenseIndexEntry, license_id)
        if entry is None:
            raise LookupError(license_id)
        row = session.get(LicenseFileEntry, (license_id, entry.version))
        if row is None:
            done = _render_one(session, store, keyring, entry, lambda: dt.datetime.now(dt.UTC))
        else:
            done = RenderedFile(license_id, entry.version, row.file_key, row.file_sha256)
    return done, store.get(done.file_key)
