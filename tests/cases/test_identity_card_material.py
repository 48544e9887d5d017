"""The resident identity card as a recognisable material (免提交): the items that need the applicant's,
a party's or the legal representative's identity document take public security's e-licence (1201)
instead of paper, found under any of the holder's codes and only with the holder's authorisation —
on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cases import intake
from cases.catalogue import load_catalogue
from cases.errors import CaseRefused
from cases.schemas import IntakeIn
from cases.views import case_out
from e_license_store.model import LicenseDraft
from mappings.canonical.models import HolderKind, SourceRef
from tests.cases import world as w
from tests.cases.world import World, consent, joint_registration


def _card(city: World, holder: str, key: str) -> str:
    """Public security's resident identity card for ``holder`` (its number is the resident id)."""
    draft = LicenseDraft(
        license_type_code="1201", license_number=holder, holder_name=w.NAMES[holder], holder_code=holder,
        holder_kind=HolderKind.person, issuer_code="113303220025675452", issue_date=dt.date.today(),
        surface={"name": w.NAMES[holder], "sex": "2", "birth_date": "1985-02-02", "address": w.ADDRESS},
    )  # fmt: skip
    source = SourceRef(department="public_security", dataset="persons", source_key=key, source_version="v1",
                       run_id="run-1")  # fmt: skip
    return city.service.issue(draft, source).license_id


def _take(city: World, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The case's materials by code, each with the reason it is missing (if it is)."""
    with city.sessions() as s:
        taken = intake.take_in(s, IntakeIn.model_validate(body), actor="test")
        s.commit()
        out = case_out(s, taken.case, personal=False).model_dump()
    reasons = {m["code"]: m.get("reason") for m in out["missing"]}
    return {m["code"]: {**m, "reason": reasons.get(m["code"])} for m in out["materials"]}


def test_items_needing_an_identity_document_name_the_card() -> None:
    items = load_catalogue().items
    wanted = {
        ("XK00101001", "M03"): "legal_representative",
        ("QT00301000", "M02"): "legal_representative",
        ("QR00401000", "M04"): "transferor",
        ("QR00401000", "M05"): "applicant",
        ("GG00401000", "M02"): "applicant",
    }
    for (item, code), holder in wanted.items():
        material = items[item].material(code)
        assert material is not None and material.license_type == "1201" and material.holder == holder, (item, code)
    assert items["XK00101001"].party("legal_representative") is not None


def test_the_legal_representatives_card_stands_for_the_paper_under_their_authorisation(city: World) -> None:
    card = _card(city, w.P2, "p2")
    rep = {"role": "legal_representative", "code": w.LEGACY_P2, "name": w.NAMES[w.P2]}  # named by the old card
    brought = [m for m in joint_registration()["materials"] if m["code"] != "M03"]
    consents = [consent("M04"), consent("M03", holder="legal_representative")]
    body = joint_registration(parties=[rep], materials=brought, authorisations=consents)
    materials = _take(city, body)
    m03 = materials["M03"]
    # found through the identity cross-walk (legacy 15-digit code → canonical id), recorded by id and version
    assert (m03["provision"], m03["license_id"], m03["license_version"], m03["found_by"]) == ("licence", card, 1, "hub")
    assert m03["license_type"] == "1201" and m03["holder"] == "legal_representative"

    # without the legal representative's authorisation the hub does not look: it is asked for on paper
    unauthorised = _take(city, joint_registration(parties=[rep], materials=brought))
    assert unauthorised["M03"]["provision"] == "missing" and unauthorised["M03"]["license_id"] is None
    assert "authorisation" in unauthorised["M03"]["reason"]
    # paper still does
    assert _take(city, joint_registration(parties=[rep]))["M03"]["provision"] == "paper"


def test_an_applicants_own_card_and_a_party_s_are_recognised_and_another_persons_is_refused(city: World) -> None:
    p1_card = _card(city, w.P1, "p1")
    p2_card = _card(city, w.P2, "p2")
    body = {
        "item_code": "QR00401000",
        "applicant": {"code": w.P1, "name": w.NAMES[w.P1]},
        "parties": [{"role": "transferor", "code": w.P2, "name": w.NAMES[w.P2]}],
        "materials": [{"code": c, "provided": "paper"} for c in ("M01", "M03", "M06")],
        "authorisations": [consent("M02", "M04", holder="transferor"), consent("M05")],
    }
    materials = _take(city, body)
    assert (materials["M04"]["provision"], materials["M04"]["license_id"]) == ("licence", p2_card)
    assert (materials["M05"]["provision"], materials["M05"]["license_id"]) == ("licence", p1_card)
    # naming the transferor's card for the applicant's own identity document: not the applicant's
    body["materials"] = [*body["materials"], {"code": "M05", "license_id": p2_card}]
    with city.sessions() as s, pytest.raises(CaseRefused) as refused:
        intake.take_in(s, IntakeIn.model_validate(body), actor="test")
    assert refused.value.code == "material_not_owned"
