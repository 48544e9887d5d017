"""Licence files: the PDF surface with CJK font and QR code, rendered off the issuing path and
bound by signature."""

from __future__ import annotations

import base64
import re
import zlib

import qrcode
from sqlalchemy.orm import Session, sessionmaker

from e_license_store.files import parse_binding
from e_license_store.model import binding_key
from e_license_store.render import ensure_file, qr_payload, render_pending_files
from e_license_store.service import LicenseService
from e_license_store.store.local import LocalStore
from e_license_store.verify import verify_file
from tests.e_license_store.conftest import business_draft, source


def _content(pdf: bytes) -> bytes:
    """The decoded content streams of a reportlab PDF (ASCII85 + Flate)."""
    out = b""
    for chunk in re.findall(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        for decode in (lambda c: zlib.decompress(base64.a85decode(c.strip(), adobe=True)), zlib.decompress):
            try:
                out += decode(chunk)
                break
            except (ValueError, zlib.error):
                continue
    return out


def _render(service: LicenseService, sessions: sessionmaker[Session]) -> int:
    return render_pending_files(store=service.store, sessions=sessions, keyring=service.signer)


def test_pending_files_are_rendered_once_bound_and_verifiable(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    a = service.issue(business_draft(), source("a"))
    service.issue(
        business_draft(license_type_code="1102", surface={"taxpayer_name": "温州洞头海景餐饮有限公司"}), source("b")
    )
    assert list(local_store.list_keys("files/")) == []  # issuing does not render
    assert _render(service, sessions) == 2
    assert _render(service, sessions) == 0
    pdf = local_store.get(f"files/{a.license_id}/v000001.pdf")
    assert pdf.startswith(b"%PDF") and b"/FontFile2" in pdf  # the CJK TrueType font is embedded
    binding = parse_binding(local_store.get(binding_key(a.license_id, 1)))
    assert binding.verify(service.signer) and binding.license_id == a.license_id
    with sessions() as s:
        res = verify_file(pdf, service.signer, session=s, store=local_store)
    assert res.ok, res.problems
    assert res.file_sha256 == binding.file_sha256


def test_qr_code_carries_licence_id_and_verification_url(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    issued = service.issue(business_draft(), source())
    _, pdf = ensure_file(issued.license_id, store=local_store, sessions=sessions, keyring=service.signer)
    payload = qr_payload(issued.license_id, 1)
    assert issued.license_id in payload and payload.startswith("http") and "/verify/" in payload and "&t=" in payload
    # the page draws exactly the dark modules of that payload's QR matrix
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
    qr.add_data(payload)
    qr.make(fit=True)
    dark = sum(sum(1 for cell in row if cell) for row in qr.get_matrix())
    assert _content(pdf).count(b" re f") == dark


def test_ensure_file_renders_on_first_request_then_keeps_it(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    issued = service.issue(business_draft(), source())
    first, pdf1 = ensure_file(issued.license_id, store=local_store, sessions=sessions, keyring=service.signer)
    keys = list(local_store.list_keys("files/"))
    second, pdf2 = ensure_file(issued.license_id, store=local_store, sessions=sessions, keyring=service.signer)
    assert first == second and pdf1 == pdf2 and list(local_store.list_keys("files/")) == keys


def test_a_changed_byte_in_the_pdf_or_a_revocation_is_reported(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    issued = service.issue(business_draft(), source())
    _, pdf = ensure_file(issued.license_id, store=local_store, sessions=sessions, keyring=service.signer)
    pos = len(pdf) // 2
    tampered = pdf[:pos] + bytes([pdf[pos] ^ 0x20]) + pdf[pos + 1 :]
    with sessions() as s:
        res = verify_file(tampered, service.signer, session=s, store=local_store)
        assert not res.ok and not res.hash_ok and any("file altered" in p for p in res.problems)
    service.revoke(issued.license_id, "吊销")
    with sessions() as s:
        res = verify_file(pdf, service.signer, session=s, store=local_store)
    assert res.hash_ok and res.revoked and not res.ok
    # the revoked version gets its own file with the stamp, rendered by the pending job
    assert _render(service, sessions) == 1
    assert local_store.get(f"files/{issued.license_id}/v000002.pdf") != pdf


def test_same_version_renders_the_same_bytes(service: LicenseService, local_store: LocalStore) -> None:
    from e_license_store.model import parse_envelope
    from e_license_store.render import render_pdf

    issued = service.issue(business_draft(), source())
    doc = parse_envelope(local_store.get(issued.object_key)).document
    assert render_pdf(doc, issued.key_id) == render_pdf(doc, issued.key_id)
