"""Every licence the pipeline and the demo issue carries its issuing authority's USCC, in its id too.

The issuer of a licence is the authority that issues it: its unified social credit code (GB 32100,
18 characters, check character verified by ``identifiers.uscc``; a government organ's starts with
``11``). The licence id (``<type>-<issuer>-<serial><check>``) embeds that code. A source's region
code (the land feed's ``330322``), a department's internal authority code (the tax system's
``13303220000``) or a placeholder (``000000``) never takes its place.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import select

from e_license_store.catalogue import issuing_authority, load_catalogue
from e_license_store.identifier import is_issuing_authority, parse
from e_license_store.model import LicenseDraft
from e_license_store.service import LicenseService
from e_license_store.signing import load_keyring, rotate
from e_license_store.store.local import LocalStore
from e_license_store.tables import LicenseIndexEntry
from identifiers import uscc
from mappings.canonical.models import HolderKind, SourceRef
from mappings.engine import load_all
from pipeline.publish import drafts
from rigs.demo_month import JOINT_LICENCES
from tests.mappings import samples

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
#: the sandbox-shaped batch of every mapping that yields licences (region codes and tax authority codes in them)
BATCHES = {
    "commerce_enterprises": samples.commerce_batch,
    "tax_taxpayers": samples.tax_batch,
    "public_security_persons": samples.person_batch,
    "land_property_rights": samples.property_batch_flat,
    "land_approval_results": samples.approval_batch,
}
#: the generator's approval results under the names the XML connector gives <ApprovalResult>'s parts
APPROVAL_COLUMNS = {
    "approval_no": "approvalNo", "version": "version", "approval_type": "ApprovalType", "project_name": "ProjectName",
    "applicant_name": "ApplicantName", "applicant_id_type": "ApplicantIdType", "applicant_id_code": "ApplicantIdCode",
    "issuer_code": "IssuerCode", "issuer_name": "IssuerName", "opinion": "Opinion", "conclusion": "Conclusion",
    "issue_date": "IssueDate", "valid_until": "ValidUntil", "land_area": "LandArea", "location": "Location",
}  # fmt: skip


def assert_government_authority(code: str) -> None:
    assert len(code) == 18 and uscc.is_valid(code), code  # GB 32100, MOD 31 check character verified
    assert code.startswith("11"), code  # 机构编制 (1), 机关 (1): a government organ
    assert is_issuing_authority(code)


@pytest.fixture()
def service(tmp_path: Path, hub_db_url: str, monkeypatch: pytest.MonkeyPatch) -> LicenseService:
    from hub.db import make_engine, session_factory
    from hub.settings import reset_settings

    rotate(tmp_path / "keys")
    monkeypatch.setenv("HUB_SIGNING_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("HUB_STORE_URL", f"file://{tmp_path / 'store'}")
    reset_settings()
    return LicenseService(
        LocalStore(tmp_path / "store"), session_factory(make_engine(hub_db_url)), load_keyring(tmp_path / "keys")
    )


def _mapped_drafts(mapping: Any, batch: pd.DataFrame | pa.Table) -> list[tuple[LicenseDraft, SourceRef]]:
    result = mapping.apply(batch)
    out = []
    for row in result.records.to_dict(orient="records"):
        for draft, suffix, _status in drafts(row, mapping):
            key = f"{row['_source_key']}{suffix}"
            source = SourceRef(
                department=mapping.department, dataset=mapping.dataset, source_key=key, source_version="1", run_id="r1"
            )
            out.append((draft, source))
    return out


def _demo_drafts() -> list[tuple[LicenseDraft, SourceRef]]:
    """The joint registration's licences as the demo issues them for a case (rigs/demo_month.py)."""
    out = []
    for type_code, (department, issuer, field_name) in JOINT_LICENCES.items():
        surface = {field_name: "温州洞头海景餐饮有限公司"}
        if type_code == "1103":
            surface["seal_types"] = "公章"
        draft = LicenseDraft(
            license_type_code=type_code, license_number=f"DEMO-{type_code}", holder_name="温州洞头海景餐饮有限公司",
            holder_code="91110000600037341L", holder_kind=HolderKind.enterprise, issuer_code=issuer,
            issue_date=dt.date(2026, 3, 2), surface=surface,
        )  # fmt: skip
        out.append((draft, SourceRef(department=department, dataset="cases", source_key=f"demo-{type_code}",
                                     source_version="1", run_id="demo")))  # fmt: skip
    return out


def test_every_licence_type_issued_carries_an_authority_uscc_in_its_id(service: LicenseService) -> None:
    mappings = load_all(MAPPINGS)
    yielding = {name for name, m in mappings.items() if m.licenses}
    assert yielding == set(BATCHES)  # a mapping that starts issuing licences joins this test
    items = [item for name in sorted(BATCHES) for item in _mapped_drafts(mappings[name], BATCHES[name]())]
    items += _demo_drafts()
    issued = [r for r in service.issue_many(items) if not isinstance(r, Exception)]
    assert len(issued) == len(items)
    with service.session_factory() as session:
        rows = session.scalars(select(LicenseIndexEntry)).all()
    types = {r.license_type_code for r in rows}
    expected = {lic.type_code for name in BATCHES for lic in mappings[name].licenses} | set(JOINT_LICENCES)
    assert types == expected == {"1101", "1102", "1103", "1201", "2101", "3101"}
    for row in rows:
        assert_government_authority(row.issuer_code)
        type_code, issuer, _serial = parse(row.license_id)
        assert (type_code, issuer) == (row.license_type_code, row.issuer_code), row.license_id
        assert row.license_id.startswith(f"{row.license_type_code}-{row.issuer_code}-")
    # the samples name their issuers by region code (land) and tax authority code (tax): the
    # licences carry the authority the catalogue registers for the type instead, never those codes
    catalogue = load_catalogue()
    assert {r.license_type_code: r.issuer_code for r in rows} == {t: catalogue[t].issuer_code for t in types}
    assert not any("-330322-" in r.license_id or "-000000-" in r.license_id for r in rows)


def test_every_catalogue_type_names_a_government_authority() -> None:
    for ltype in load_catalogue().values():  # 3201 and any type a case yields are issued under these
        assert_government_authority(ltype.issuer_code)


def test_the_sandbox_land_bureau_names_itself_and_its_opinions_are_issued_under_it(small_city: Any) -> None:
    mapping = load_all(MAPPINGS)["land_approval_results"]
    frame = small_city.approval_results
    assert len(frame) > 0
    for code in frame["issuer_code"].unique():
        assert_government_authority(str(code))
    batch = frame.rename(columns=APPROVAL_COLUMNS)[list(APPROVAL_COLUMNS.values())].astype(str)
    items = _mapped_drafts(mapping, batch)
    assert items and {d.license_type_code for d, _ in items} == {"3101"}
    # the source's own authority (温州市自然资源和规划局), not the region of the project
    assert {d.issuer_code for d, _ in items} == set(frame["issuer_code"].astype(str))


def test_an_issuer_that_is_no_authority_gives_way_to_the_catalogues() -> None:
    land = load_catalogue()["3101"].issuer_code
    for given in ("330322", "000000", "13303220000", "330322001000", "113303220025679672",  # wrong check
                  "91110000600037341L", "", None):  # fmt: skip
        assert issuing_authority("3101", given) == land, given
    assert issuing_authority("3101", " 11330300-0025 6798 3t ") == "11330300002567983T"
