"""A licence issued from a record whose USCC is damaged carries the code of the enterprise matching
found, on SQLite and PostgreSQL: the business licence (numbered by the USCC) and the tax registration
certificate (numbered by the taxpayer code) show the valid USCC as their number and their holder's
code, in the index and in the signed document, and verify; a land-use pre-review opinion whose
applicant is named by a damaged USCC is matched by the applicant's name and held by the enterprise;
a record left in the review queue holds its licence as written until a steward accepts a candidate:
the licence then moves to the candidate with the candidate's code as its number, and a split moves
both back."""

from __future__ import annotations

import datetime as dt
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
from identity.matching_step import PROBABILISTIC
from identity.matching_tables import IdentityReviewQueue
from identity.resolve import link_mapping_batch
from pipeline.publish import publish_frame
from pipeline.steps import load_mapping
from recognition.identity_review import accept, move_licences, split
from sandbox.generator import Sizes, generate
from tests.identity.matching.test_resolve_enterprise_matching import TWIN_NAME, TWIN_REP, TWINS, _damage, _seed

VERSION = pd.Timestamp("2026-03-01T10:00:00")
#: a USCC of neither twin, its check character wrong: which twin?
TWIN_DAMAGED = "91330322MA2TWYN2XA"


@pytest.fixture(scope="module")
def city() -> object:
    return generate(seed=4242, sizes=Sizes(persons=1500, enterprises=400, properties=10))


def _commerce(ent: pd.Series) -> pd.DataFrame:
    """Enterprise-registry records as the commerce mapping gives them."""
    base = {
        "_source_version": VERSION,
        "reg_no": None,
        "org_code": None,
        "enterprise_type": "有限责任公司",
        "registered_capital": 500.0,
        "established_date": pd.Timestamp("2015-06-01"),
        "business_scope": "机械设备制造",
        "region_code": "330322",
        "status": "active",
        "license_issue_date": pd.Timestamp("2026-02-27"),
    }
    return pd.DataFrame(
        [
            {  # a known enterprise whose USCC lost its check character
                **base,
                "_source_key": "E-damaged",
                "uscc": _damage(str(ent["uscc"])),
                "name": ent["ent_name"],
                "legal_rep_name": ent["legal_rep_name"],
                "address": ent["address"],
                "region_code": ent["region_code"],
            },
            {  # one of two twins, its code damaged beyond telling which: waits in review
                **base,
                "_source_key": "E-ambiguous",
                "uscc": TWIN_DAMAGED,
                "name": TWIN_NAME,
                "legal_rep_name": TWIN_REP,
                "address": "浙江省温州市洞头区北岙街道海霞路8号",
            },
        ]
    )


def _tax(ent: pd.Series) -> pd.DataFrame:
    """A taxpayer record as the tax mapping gives it: the damaged USCC is its key and its code."""
    damaged = _damage(str(ent["uscc"]))
    return pd.DataFrame(
        [
            {
                "_source_key": damaged,
                "_source_version": VERSION,
                "taxpayer_code": damaged,
                "taxpayer_name": ent["ent_name"],
                "legal_rep_name": ent["legal_rep_name"],
                "address": ent["address"],
                "tax_authority_code": "113303220025678912",
                "tax_authority_name": "国家税务总局温州市洞头区税务局",
                "registration_date": pd.Timestamp("2016-01-04"),
                "taxpayer_status": "normal",
            }
        ]
    )


def _approval(ent: pd.Series) -> pd.DataFrame:
    """A land-use pre-review opinion as the land mapping gives it: its applicant named by a damaged USCC."""
    return pd.DataFrame(
        [
            {
                "_source_key": "洞自然资预〔2026〕9002号",
                "_source_version": "2",
                "approval_no": "洞自然资预〔2026〕9002号",
                "approval_type_code": "land_use_pre_review",
                "project_name": "洞头区海霞路厂房扩建项目",
                "applicant_name": ent["ent_name"],
                "applicant_code": _damage(str(ent["uscc"])),
                "issuer_name": "温州市洞头区自然资源和规划局",
                "issuer_code": "113303220025678912",
                "opinion": "同意",
                "conclusion": "approved",
                "issue_date": pd.Timestamp("2026-02-20"),
                "valid_until": pd.Timestamp("2029-02-19"),
                "land_area_m2": 1200.0,
                "location": "浙江省温州市洞头区北岙街道海霞路",
            }
        ]
    )


def _scenario(url: str, pop: object, tmp_path: Path) -> None:
    engine = make_engine(url)
    rotate(tmp_path / "keys")
    keyring = load_keyring(tmp_path / "keys")
    store = LocalStore(tmp_path / "store")
    service = LicenseService(store, session_factory(engine), keyring)
    try:
        with session_scope(engine) as s:
            ents = _seed(s, pop)
        ent = ents.iloc[10]
        valid, damaged = str(ent["uscc"]), _damage(str(ent["uscc"]))
        for name, frame, type_code, count in (
            ("commerce_enterprises", _commerce(ent), "1101", (2, 0)),
            ("tax_taxpayers", _tax(ent), "1102", (1, 0)),
            ("land_approval_results", _approval(ent), "3101", (1, 0)),
        ):
            mapping = load_mapping(name)
            with session_scope(engine) as s:
                result = link_mapping_batch(s, frame, mapping, run_id=f"run-{name}")
            records = result.records
            assert records["canonical_code"].iloc[0] == valid
            assert records["identity_method"].iloc[0] == PROBABILISTIC
            assert records["identity_method"].iloc[1:].tolist() == (["review"] if type_code == "1101" else [])
            issued, _changed, idle = publish_frame(
                records, mapping, service, run_id=f"run-{name}", staged_ref=f"file:///staged/{name}.parquet"
            )
            assert (issued, idle) == count
            with session_scope(engine) as s:
                (lic,) = licenses_by_holder(s, valid, type_codes=[type_code])
                # the number and the holder: the valid USCC, never the damaged code as written (an
                # approval keeps its own number: it is numbered by the approval, not by the holder)
                number = records["approval_no"].iloc[0] if type_code == "3101" else valid
                assert lic.license_number == number and lic.holder_code == valid
                data = store.get(lic.object_key)
                document = parse_envelope(data).document.license
                assert document.license_number == number and document.holder_code == valid
                assert document.holder_name == ent["ent_name"]
                checked = verify_file(data, keyring, session=s)
                assert checked.ok, checked.problems
                assert licenses_by_holder(s, damaged) == []
        # the twin in review: its business licence as written, until a steward decides
        with session_scope(engine) as s:
            (waiting,) = licenses_by_holder(s, TWIN_DAMAGED)
            assert waiting.license_number == TWIN_DAMAGED
            item_id = s.scalars(select(IdentityReviewQueue.id)).one()
        with session_scope(engine) as s:
            accept(s, item_id, actor="steward-1", reason="same enterprise: registry file", candidate=TWINS[1])
        with session_scope(engine) as s:
            (moved,) = move_licences(s, service)
            assert [m["version"] for m in moved.moves] == [2]
        with session_scope(engine) as s:
            (lic,) = licenses_by_holder(s, TWINS[1])
            assert lic.license_id == waiting.license_id and lic.license_number == TWINS[1]
            document = parse_envelope(store.get(lic.object_key)).document.license
            assert (document.license_number, document.holder_code, document.version) == (TWINS[1], TWINS[1], 2)
            assert verify_file(store.get(lic.object_key), keyring, session=s).ok
        with session_scope(engine) as s:
            split(s, item_id, actor="steward-2", reason="a different enterprise after all")
        with session_scope(engine) as s:
            move_licences(s, service)
        with session_scope(engine) as s:
            (back,) = licenses_by_holder(s, TWIN_DAMAGED)
            assert back.license_number == TWIN_DAMAGED and back.version == 3
            assert licenses_by_holder(s, TWINS[1]) == []
        with session_scope(engine) as s:
            held = licenses_by_holder(s, valid)
            assert sorted(r.license_type_code for r in held) == ["1101", "1102", "3101"]
            assert {r.issue_date for r in held} == {dt.date(2026, 2, 27), dt.date(2016, 1, 4), dt.date(2026, 2, 20)}
    finally:
        engine.dispose()


def test_damaged_uscc_licences_carry_the_valid_code_on_sqlite(hub_db_url: str, city: object, tmp_path: Path) -> None:
    _scenario(hub_db_url, city, tmp_path)


@pytest.mark.postgres
def test_damaged_uscc_licences_carry_the_valid_code_on_postgres(
    pg_hub_db_url: str, city: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    reset_settings()
    _scenario(pg_hub_db_url, city, tmp_path)
