"""Licences know their case: a licence issued for a case carries its supervision code in the signed
document (format hub.e-license.v2), older documents (v1) verify as before, and the case lists its
results — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from pydantic import ValidationError

from cases import intake
from cases.schemas import IntakeIn
from cases.views import case_out
from e_license_store.canonical_json import canonical_bytes, parse_canonical
from e_license_store.index import content_fingerprint, get_license
from e_license_store.model import (
    DOCUMENT_FORMAT,
    DOCUMENT_FORMAT_V2,
    Envelope,
    LicenseDocument,
    LicenseDraft,
    parse_envelope,
)
from e_license_store.service import InvalidDraft
from e_license_store.verify import verify_license
from identifiers import supervision_code
from mappings.canonical.models import HolderKind, SourceRef
from tests.cases import world as w
from tests.cases.world import World, joint_registration

NEW_FIRM = w.uscc("330322", "55667788")


def _case(city: World) -> str:
    with city.sessions() as s:
        code = intake.take_in(s, IntakeIn.model_validate(joint_registration()), actor="test").case.code
        s.commit()
    return code


def _business_licence(code: str | None, key: str = "new-firm") -> LicenseDraft:
    return LicenseDraft(
        license_type_code="1101", license_number="91330322MA-0001", holder_name="温州洞头海霞科技有限公司",
        holder_code=NEW_FIRM, holder_kind=HolderKind.enterprise, issuer_code="113303220025678958",
        issue_date=dt.date.today(), surface={"enterprise_name": "温州洞头海霞科技有限公司"}, case_code=code,
    )  # fmt: skip


def _source(key: str) -> SourceRef:
    return SourceRef(department="commerce", dataset="ds", source_key=key, source_version="v1", run_id="run-1")


def test_a_licence_issued_for_a_case_carries_its_code_and_the_case_lists_it(city: World) -> None:
    code = _case(city)
    printed = supervision_code.format(code)
    issued = city.service.issue(_business_licence(printed), _source("new-firm"))
    raw = city.service.store.get(issued.object_key)
    envelope = parse_envelope(raw)
    assert envelope.document.format == DOCUMENT_FORMAT_V2
    assert envelope.document.license.case_code == code  # kept compact, whatever form was given
    assert verify_license(raw, city.service.signer).signature_ok
    # the code is under the seal: changing it breaks the signature
    tampered = raw.replace(code.encode(), supervision_code.generate("330322", dt.date(2026, 1, 5)).encode())
    assert not verify_license(tampered, city.service.signer).signature_ok
    # an amendment keeps the case
    amended = city.service.amend(issued.license_id, {"license_number": "91330322MA-0002"}, reason="更正")
    assert parse_envelope(city.service.store.get(amended.object_key)).document.license.case_code == code
    with city.sessions() as s:
        out = case_out(s, intake.svc.find_case(s, code), personal=False)
    assert [(r.license_id, r.license_type_code, r.version) for r in out.results] == [(issued.license_id, "1101", 2)]
    assert NEW_FIRM not in out.model_dump_json()  # a result names the licence, not its holder


def test_older_documents_keep_format_v1_and_verify_as_before(city: World) -> None:
    lid = city.licences["p1_property"]
    with city.sessions() as s:
        row = get_license(s, lid)
    assert row is not None
    raw = city.service.store.get(row.object_key)
    stored = parse_canonical(raw)
    assert isinstance(stored, dict)
    assert stored["document"]["format"] == DOCUMENT_FORMAT and "case_code" not in stored["document"]["license"]
    assert verify_license(raw, city.service.signer).signature_ok
    # a v1 document sealed as the hub sealed them before case codes existed still verifies
    document = dict(stored["document"], recorded_at="2025-06-01T00:00:00Z")
    data = canonical_bytes(document)
    envelope = Envelope(LicenseDocument.model_validate(document), "", city.service.signer.sign(data))
    assert envelope.document.canonical() == data
    assert verify_license(envelope, city.service.signer).signature_ok
    # the formats do not mix: v1 with a case, v2 without one, or a format nobody wrote
    with pytest.raises(ValidationError, match="cannot carry"):
        LicenseDocument.model_validate({**document, "license": {**document["license"], "case_code": "x"}})
    with pytest.raises(ValidationError, match="needs"):
        LicenseDocument.model_validate({**document, "format": DOCUMENT_FORMAT_V2})
    with pytest.raises(ValidationError, match="unknown document format"):
        LicenseDocument.model_validate({**document, "format": "hub.e-license.v9"})
    # re-issuing an old licence's source unchanged stays a no-op: its fingerprint is what it was
    old = {k: v for k, v in stored["document"]["license"].items() if k not in ("version", "previous_version", "status")}
    old["source"] = {k: old["source"][k] for k in ("department", "dataset", "source_key")}
    text = json.dumps(old, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert content_fingerprint(envelope.document) == hashlib.sha256(text.encode()).hexdigest()
    # a case no licence was issued for lists no results
    with city.sessions() as s:
        assert case_out(s, intake.svc.find_case(s, _case(city)), personal=False).results == []


def test_a_licence_naming_a_malformed_case_code_is_refused(city: World) -> None:
    with pytest.raises(InvalidDraft, match="supervision code"):
        city.service.issue(_business_licence("330322-20261204-XXXXXX"), _source("bad"))
    with city.sessions() as s:
        assert get_license(s, city.service.license_for(_business_licence(None), _source("bad")).license_id) is None
