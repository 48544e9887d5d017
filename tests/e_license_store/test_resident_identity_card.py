"""The resident identity card (居民身份证) as an e-licence: public security issues it from the population
registry for living residents with a valid id; its number is the resident id, shown masked everywhere
the hub shows licences to a reader without ``personal:read``, and never part of the licence id."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from e_license_store.catalogue import license_type, number_shown
from e_license_store.cli import app
from e_license_store.index import LicenseIndexRow, get_license
from e_license_store.model import parse_envelope
from e_license_store.render import copy_document
from e_license_store.service import LicenseService
from e_license_store.tables import LicenseIndexEntry
from mappings.engine import load_mapping
from pipeline.publish import publish_frame
from recognition.views import summary

MAPPING = "mappings/public_security_persons.yaml"
ALIVE, DEAD, NO_ID = "330322198001011231", "33032219491231002X", None


def _raw(status_of_first: str = "正常") -> pd.DataFrame:
    rows = [
        ("1001", ALIVE, "陈海生", "1", "1980-01-01", "汉族", "浙江省温州市洞头区北岙街道海滨路8号", status_of_first),
        ("1002", DEAD, "林晓梅", "2", "1949-12-31", "汉族", "浙江省温州市洞头区东屏街道1号", "死亡"),
        ("1003", NO_ID, "赵志远", "1", "1990-03-03", "汉族", "浙江省温州市洞头区元觉街道2号", "正常"),
    ]
    cols = ["person_no", "resident_id", "name", "sex", "birth_date", "ethnicity", "address", "status"]
    df = pd.DataFrame(rows, columns=cols)
    return df.assign(region_code="330322", phone="13857712345", updated_at=pd.Timestamp("2026-03-04 10:00:00"))


def _publish(service: LicenseService, raw: pd.DataFrame) -> tuple[int, int, int]:
    mapping = load_mapping(MAPPING)
    records = mapping.apply(raw).records
    return publish_frame(records, mapping, service, run_id="run-1", staged_ref="staged/persons")


def test_catalogue_types_the_card_as_public_securitys_with_a_personal_number() -> None:
    card = license_type("1201")
    assert card.name == "居民身份证" and card.holder_kind == "person" and card.issuer_department == "public_security"
    # the same authority as the seal-filing record's: the public security bureau
    assert card.issuer_code == license_type("1103").issuer_code == "113303220025675452"
    assert card.number_personal == "resident_id"
    assert card.personal_kinds == {
        "name": "name", "sex": None, "ethnicity": None, "birth_date": "birth_date", "address": "address",
    }  # fmt: skip
    assert number_shown("1201", ALIVE, False) == "330322********1231"
    assert number_shown("1201", ALIVE, True) == ALIVE
    # a type whose number is public keeps it; an unknown type's number is scrubbed by shape
    assert number_shown("1101", "91330322MA2C8XYZ1K", False) == "91330322MA2C8XYZ1K"
    assert number_shown("9999", ALIVE, False) == "330322********1231"


def test_persons_feed_issues_a_card_for_the_living_and_revokes_it_when_they_die(
    service: LicenseService, key_dir: object
) -> None:
    issued, changed, idle = _publish(service, _raw())
    # the living resident with an id gets a card; the deceased one and the one without an id none
    assert (issued, changed, idle) == (1, 0, 2)
    with service.session_factory() as s:
        ids = list(s.scalars(select(LicenseIndexEntry.license_id)))
        assert len(ids) == 1
        row = get_license(s, ids[0])
    assert row is not None
    assert row.license_type_code == "1201" and row.license_number == ALIVE and row.holder_code == ALIVE
    assert row.holder_kind == "person" and row.issuer_code == "113303220025675452"
    assert row.issue_date == dt.date(2026, 3, 4)  # dated by the registry record's version
    # the licence id is keyed on the registry's person number: no part of the resident id shows in it
    assert ALIVE not in row.license_id and ALIVE[6:14] not in row.license_id and ALIVE[-8:] not in row.license_id
    assert row.license_id.startswith("1201-113303220025675452-")

    # the same export again changes nothing
    assert _publish(service, _raw()) == (0, 0, 2)
    # the resident dies: no new card, the standing one is revoked
    assert _publish(service, _raw(status_of_first="死亡")) == (0, 1, 3)
    with service.session_factory() as s:
        after = get_license(s, row.license_id)
    assert after is not None and after.status == "revoked" and after.version == 2


def test_listings_copies_and_cli_mask_the_cards_number(
    service: LicenseService, key_dir: object, hub_db_url: str
) -> None:
    _publish(service, _raw())
    with service.session_factory() as s:
        (license_id,) = s.scalars(select(LicenseIndexEntry.license_id))
        row = get_license(s, license_id)
    assert row is not None
    doc = parse_envelope(service.store.get(row.object_key)).document
    copy = copy_document(
        doc, content_sha256=row.content_sha256, holder_name="陈**", holder_code="330322********1231", surface={},
        withheld=[],
    )  # fmt: skip
    assert copy["license"]["license_number"] == "330322********1231"
    assert ALIVE not in json.dumps(copy, ensure_ascii=False)

    out = CliRunner().invoke(app, ["list", "--holder", ALIVE, "--json"])
    assert out.exit_code == 0, out.output
    listed = json.loads(out.output.splitlines()[0])
    assert listed["license_number"] == "330322********1231" and listed["license_type_code"] == "1201"
    shown = CliRunner().invoke(app, ["get", license_id])
    assert shown.exit_code == 0, shown.output
    assert ALIVE not in shown.output and "330322********1231" in shown.output


@pytest.mark.parametrize("personal", [False, True])
def test_api_listing_shows_the_number_by_scope(personal: bool) -> None:
    row = LicenseIndexRow(
        license_id="1201-113303220025675452-ABCDEFGHIJKL0", license_type_code="1201", license_type_name="居民身份证",
        license_number=ALIVE, holder_code=ALIVE, holder_kind="person", holder_name="陈海生",
        issuer_code="113303220025675452", issuer_name="公安局", issue_date=dt.date(2026, 3, 4),
        valid_from=dt.date(2026, 3, 4), valid_until=None, status="valid", version=1, content_sha256="0" * 64,
        object_key="k", key_id="key", object_sha256=None, updated_at=dt.datetime(2026, 3, 4, tzinfo=dt.UTC),
    )  # fmt: skip
    shown = summary(row, personal)
    assert (shown["license_number"] == ALIVE) is personal
    assert (ALIVE in json.dumps(shown, default=str)) is personal
