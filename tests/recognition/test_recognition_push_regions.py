"""Region filters of subscriptions: an event's region is the holder's (resident id, USCC, registration
number), else the issuer's division (tax authority codes, an organ's USCC, division codes); regions
are 2-, 4- or 6-digit prefixes, a city's code covering its districts."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from e_license_store.model import LicenseDraft
from hub.models import OutboxEvent
from hub.regions import event_region
from mappings.canonical.models import HolderKind
from recognition import delivery as dlv
from recognition import subscriptions as subs_mod
from recognition.tables import Subscription
from tests.recognition.rec_helpers import Receiver, World, allow_destination, auth, source_ref

ORG_CODE = "MA2C8XYZ1"  # an organisation code: no region in it, the issuer's counts


def _issue(world: World, key: str, *, issuer: str, holder: str = ORG_CODE) -> OutboxEvent:
    lid = world.service.issue(
        LicenseDraft(
            license_type_code="1101", license_number=f"L-{key}", holder_name="海景餐饮", holder_code=holder,
            holder_kind=HolderKind.enterprise, issuer_code=issuer, issue_date=dt.date(2020, 1, 2),
            surface={"enterprise_name": "海景餐饮", "legal_rep_name": "张三丰", "address": "洞头区中心路12号"},
        ),
        source_ref(key),
    ).license_id  # fmt: skip
    with world.sessions() as s:
        event = s.scalars(select(OutboxEvent).where(OutboxEvent.subject == lid)).one()
        s.expunge(event)
    return event


def _filter(regions: list[str]) -> Subscription:
    return Subscription(id="s", name="n", event_types=["license.*"], license_types=None, regions=regions,
                        start_event_id=0)  # fmt: skip


COVERING = (["330322"], ["330300"], ["3303"], ["33"], ["330000"], ["110105", "330322"])
NOT_COVERING = (["330302"], ["330303"], ["11"], ["3302"])


def _assert_filters(event: OutboxEvent, region: str) -> None:
    assert event.region_code == region
    for regions in COVERING:
        assert subs_mod.matches(_filter(regions), event), regions
    for regions in NOT_COVERING:
        assert not subs_mod.matches(_filter(regions), event), regions


def test_region_filter_with_tax_authority_issuer(world: World) -> None:
    """An 11-digit tax authority code (税务机关代码) is 1 + division + 4 digits."""
    _assert_filters(_issue(world, "tax-auth", issuer="13303220000"), "330322")


def test_region_filter_with_uscc_issuer(world: World) -> None:
    """An issuing organ's own USCC carries its division in positions 3-8 (not in its first six)."""
    _assert_filters(_issue(world, "organ", issuer="11330322002567891X"), "330322")


def test_region_filter_with_division_code_issuer(world: World) -> None:
    _assert_filters(_issue(world, "division", issuer="330322"), "330322")


def test_region_of_the_holder_comes_first(world: World) -> None:
    """A Lucheng (330302) enterprise's licence issued by a Dongtou authority is Lucheng's."""
    event = _issue(world, "holder", issuer="13303220000", holder="91330302MA2C8XYZ7Q")
    assert event.region_code == "330302"
    assert subs_mod.matches(_filter(["330302"]), event) and subs_mod.matches(_filter(["3303"]), event)
    assert not subs_mod.matches(_filter(["330322"]), event)
    # a registration number (注册号) carries its authority's division; a code without one, nothing
    assert event_region("enterprise", "330300000012345", "13303220000") == "330300"
    assert event_region("enterprise", ORG_CODE, "GS-ZJ-001") is None
    assert not subs_mod.matches(_filter(["33"]), OutboxEvent(id=1, event_type="license.issued", region_code=None))


def test_readme_region_example_receives_dongtou_business_licences(
    world: World, client: TestClient, tokens: dict[str, str], receiver: Receiver
) -> None:
    """The README's subscription (business licences, regions ["330322"]): before, the region was the
    issuer code's first six characters ("113303" for the market regulator's USCC), so it got nothing."""
    allow_destination(world.engine, "tax_bureau", receiver.origin)
    res = client.post("/v1/subscriptions", headers=auth(tokens["tax_bureau"]), json={
        "name": "营业执照变更", "event_types": ["license.issued"], "license_types": ["1101"],
        "regions": ["330322"], "url": receiver.url})  # fmt: skip
    assert res.status_code == 201, res.text
    receiver.secret = res.json()["secret"]
    dongtou = _issue(world, "dongtou", issuer="113303220025678912", holder="91330322MA2C8XYZ3M")
    _issue(world, "lucheng", issuer="113303020025678912", holder="91330302MA2C8XYZ7Q")
    assert dlv.run_once(world.engine).delivered == 1
    assert [body["subject"] for _, body in receiver.received] == [dongtou.subject]


@pytest.mark.parametrize("regions", [["3"], ["330"], ["33032"], ["3303221"], ["33a322"]])
def test_regions_are_two_four_or_six_digit_prefixes(
    world: World, client: TestClient, tokens: dict[str, str], regions: list[str]
) -> None:
    allow_destination(world.engine, "tax_bureau", "https://hooks.tax.example/")
    res = client.post("/v1/subscriptions", headers=auth(tokens["tax_bureau"]), json={
        "name": "n", "event_types": ["license.issued"], "license_types": ["1101"], "regions": regions,
        "url": "https://hooks.tax.example/in"})  # fmt: skip
    assert res.status_code == 422, res.text
    with pytest.raises(ValueError, match="2-, 4- or 6-digit"):
        subs_mod.YamlSubscription(id="by-region", name="n", event_types=["license.issued"], regions=regions,
                                  url="https://hooks.tax.example/in")  # fmt: skip
