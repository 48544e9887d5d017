"""Holders named inside records go through matching, on SQLite and PostgreSQL: a property right's
owner whose resident id lost its check character is linked by the model to the person the index
knows (probability and model version on the owner's link ``<unit>#<n>``), an owner of two twins'
name and birth date waits in the review queue, an owner nobody knows becomes a provisional
identity; the property certificates are issued to the identities found — the twin's held as
written until a steward's decision moves it."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from e_license_store.index import licenses_by_holder
from e_license_store.model import parse_envelope
from e_license_store.service import LicenseService
from e_license_store.signing import load_keyring, rotate
from e_license_store.store.local import LocalStore
from e_license_store.verify import verify_file
from hub.db import make_engine, session_factory, session_scope
from hub.settings import reset_settings
from identifiers import resident_id
from identity.matching_model import latest
from identity.matching_step import PROBABILISTIC, PROVISIONAL, provisional_code
from identity.matching_tables import OPEN, IdentityReviewQueue
from identity.resolve import link_mapping_batch
from identity.tables import IdentityPerson, IdentitySourceRecord
from pipeline.publish import publish_frame
from pipeline.steps import load_mapping
from recognition.identity_review import accept, move_licences
from sandbox.generator import Sizes, generate
from tests.identity.matching.test_resolve_matching import TWIN_NAME, TWINS, _damage, _seed

UNKNOWN_NAME = "司马无名"
#: nobody's id, born 1931-07-15 in Dongtou, its check character wrong
UNKNOWN_ID = _damage("33032219310715001" + resident_id.calc_check_digit("33032219310715001"))
#: an id of neither twin (another sequence number), its check character wrong: which twin?
TWIN_ID = _damage("33032220010101007" + resident_id.calc_check_digit("33032220010101007"))


@pytest.fixture(scope="module")
def city() -> object:
    return generate(seed=4242, sizes=Sizes(persons=1500, enterprises=10, properties=10))


def _owner(name: object, code: object, share: str = "1") -> dict[str, object]:
    return {"name": name, "holder_code": code, "holder_kind": "person", "share": share}


def _land(known: pd.Series, other: pd.Series) -> pd.DataFrame:
    """Property rights as the land mapping gives them: the owners a list inside each record."""

    def right(unit: str, owners: list[dict[str, object]]) -> dict[str, object]:
        return {
            "_source_key": unit,
            "_source_version": pd.Timestamp("2026-03-01T10:00:00"),
            "unit_no": unit,
            "certificate_no": f"浙(2026)洞头区不动产权第{unit[-7:]}号",
            "right_type": "国有建设用地使用权/房屋所有权",
            "location": "浙江省温州市洞头区北岙街道海霞路8号",
            "area_m2": 96.5,
            "land_use": "住宅",
            "registration_date": pd.Timestamp("2026-02-27"),
            "status": "registered",
            "owners": owners,
        }

    return pd.DataFrame(
        [
            right(
                "330322001001GB00001F00010001",
                [  # a known person whose id lost its check character, beside one with a valid id
                    _owner(known["name"], _damage(str(known["resident_id"])), "1/2"),
                    _owner(other["name"], other["resident_id"], "1/2"),
                ],
            ),
            right("330322001001GB00002F00010001", [_owner(TWIN_NAME, TWIN_ID)]),  # one of two twins
            right("330322001001GB00003F00010001", [_owner(UNKNOWN_NAME, UNKNOWN_ID)]),  # nobody known
        ]
    )


def _scenario(url: str, pop: object, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(url)
    mapping = load_mapping("land_property_rights")
    persons = pop.persons  # type: ignore[attr-defined]
    try:
        with session_scope(engine) as s:
            known = _seed(s, pop)
        other = persons.iloc[11]
        land = _land(known, other)
        with caplog.at_level(logging.INFO), session_scope(engine) as s:
            result = link_mapping_batch(s, land, mapping, run_id="run-land-1")
            model = latest()
            assert model is not None and result.model_version == model.version
            assert (result.linked_by_match, result.sent_to_review, result.provisional) == (1, 1, 1)
            owners = [list(o) for o in result.records["owners"]]
            # the damaged id: the person of the index; the valid id: its own; the twin: nobody yet
            assert [o["resolved_id"] for o in owners[0]] == [known["resident_id"], other["resident_id"]]
            assert owners[1][0]["resolved_id"] is None
            unknown_code = provisional_code("land", "property_rights", "330322001001GB00003F00010001#0")
            assert owners[2][0]["resolved_id"] == unknown_code
        # no personal data in what matching logged: neither the damaged ids nor the names
        logged = caplog.text
        for secret in (_damage(str(known["resident_id"])), UNKNOWN_ID, TWIN_ID, UNKNOWN_NAME, str(known["name"])):
            assert secret not in logged
        with session_scope(engine) as s:
            links = {
                link.source_key: link
                for link in s.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.department == "land"))
            }
            matched = links["330322001001GB00001F00010001#0"]
            assert matched.canonical_code == known["resident_id"] and matched.method == PROBABILISTIC
            assert matched.match_probability is not None and matched.match_probability >= model.thresholds.match
            assert matched.model_version == model.version
            assert links["330322001001GB00001F00010001#1"].canonical_code == other["resident_id"]
            assert links["330322001001GB00001F00010001#1"].method != PROBABILISTIC
            assert "330322001001GB00002F00010001#0" not in links
            (item,) = s.scalars(select(IdentityReviewQueue))
            assert item.status == OPEN and item.department == "land"
            assert item.incoming_key == "330322001001GB00002F00010001#0"
            assert {item.candidate_code, item.runner_up_code} == set(TWINS)
            assert item.details is not None and item.details["name"] != TWIN_NAME  # masked
            provisional = links["330322001001GB00003F00010001#0"]
            assert provisional.method == PROVISIONAL and provisional.canonical_code == unknown_code
            person = s.get(IdentityPerson, unknown_code)
            assert person is not None and person.provisional and person.name == UNKNOWN_NAME
            # the same batch again links nothing twice and queues nothing twice
        with session_scope(engine) as s:
            again = link_mapping_batch(s, _land(known, other), mapping, run_id="run-land-2")
            assert again.records["owners"].iloc[0][0]["resolved_id"] == known["resident_id"]
            assert len(s.scalars(select(IdentityReviewQueue)).all()) == 1
            assert (
                len(s.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.department == "land")).all()) == 3
            )

        # the property certificates: issued to the identities found, none under a damaged code
        rotate(tmp_path / "keys")
        keyring = load_keyring(tmp_path / "keys")
        store = LocalStore(tmp_path / "store")
        service = LicenseService(store, session_factory(engine), keyring)
        issued, _changed, idle = publish_frame(
            result.records, mapping, service, run_id="run-land-1", staged_ref="file:///staged/land/resolved.parquet"
        )
        assert (issued, idle) == (4, 0)
        with session_scope(engine) as s:
            (held,) = licenses_by_holder(s, str(known["resident_id"]))
            assert held.license_type_code == "2101"
            assert [r.holder_code for r in licenses_by_holder(s, unknown_code)] == [unknown_code]
            assert licenses_by_holder(s, _damage(str(known["resident_id"]))) == []
            assert licenses_by_holder(s, UNKNOWN_ID) == []
            data = store.get(held.object_key)
            document = parse_envelope(data).document.license
            assert document.holder_code == known["resident_id"] and document.holder_name == known["name"]
            assert document.issue_date == dt.date(2026, 2, 27)
            checked = verify_file(data, keyring, session=s)
            assert checked.ok, checked.problems
            # the twin's certificate is held as written until a steward decides whose it is
            (waiting,) = licenses_by_holder(s, TWIN_ID)
            item_id = s.scalars(select(IdentityReviewQueue.id)).one()
        with session_scope(engine) as s:
            accept(s, item_id, actor="steward-1", reason="same person: the certificate's archive", candidate=TWINS[0])
        with session_scope(engine) as s:
            (moved,) = move_licences(s, service)
            assert moved.moves[0]["license_id"] == waiting.license_id and moved.moves[0]["version"] == 2
        with session_scope(engine) as s:
            (now,) = licenses_by_holder(s, TWINS[0])
            assert now.license_id == waiting.license_id and now.license_number == waiting.license_number
            assert licenses_by_holder(s, TWIN_ID) == []
    finally:
        engine.dispose()


def test_owner_with_a_damaged_id_is_matched_on_sqlite(
    hub_db_url: str, city: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _scenario(hub_db_url, city, tmp_path, caplog)


@pytest.mark.postgres
def test_owner_with_a_damaged_id_is_matched_on_postgres(
    pg_hub_db_url: str, city: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    reset_settings()
    _scenario(pg_hub_db_url, city, tmp_path, caplog)
