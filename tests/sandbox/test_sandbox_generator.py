"""The population generator: real identifiers, ground truth that agrees, dirt at the stated rates."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
from stdnum.cn import ric, uscc
from stdnum.iso7064 import mod_11_10

from sandbox.dirt import DirtProfile
from sandbox.generator import Sizes, generate, write


@pytest.fixture(scope="module")
def population():
    return generate(11, Sizes(3000, 800, 1000))


def normalise_code(value: str) -> str:
    """Undo format dirt only: full-width digits, spaces, dashes, lower-case x."""
    s = unicodedata.normalize("NFKC", value)
    return re.sub(r"[\s-]", "", s).upper()


def resident_15_to_18(code15: str) -> str:
    body = code15[:6] + "19" + code15[6:]
    return body + ric.calc_check_digit(body + "0")  # stdnum expects a placeholder check character


def test_every_clean_identifier_is_valid(population) -> None:
    assert population.persons["resident_id"].map(ric.is_valid).all()
    assert population.enterprises["uscc"].map(uscc.is_valid).all()
    assert population.persons["resident_id"].is_unique
    assert population.enterprises["uscc"].is_unique
    reg = population.enterprises["reg_no"].dropna()
    assert len(reg) > 0
    assert reg.map(lambda r: len(r) == 15 and mod_11_10.is_valid(r)).all()
    ents = population.enterprises.dropna(subset=["taxpayer_id"])
    assert (ents["taxpayer_id"] == ents["region_code"] + ents["org_code"]).all()
    # the organisation code is positions 9-17 of the USCC
    assert (population.enterprises["uscc"].str[8:17] == population.enterprises["org_code"]).all()


def test_sex_is_the_sequence_parity(population) -> None:
    p = population.persons
    odd = p["resident_id"].str[16].astype(int) % 2 == 1
    assert ((p["sex"] == "1") == odd).all()
    assert (p["resident_id"].str[6:14] == p["birth_date"].dt.strftime("%Y%m%d")).all()


def test_legal_reps_are_residents_and_owners_are_persons_or_enterprises(population) -> None:
    persons = set(population.persons["resident_id"])
    assert set(population.enterprises["legal_rep_id"]) <= persons
    gt = population.ground_truth
    owners = gt[gt["dataset"] == "property_rights"]
    assert set(owners["entity_kind"]) == {"person", "enterprise"}
    applicants = gt[gt["dataset"] == "approval_results"]
    assert set(applicants["entity_kind"]) == {"enterprise"}
    assert set(applicants["canonical_id"]) <= set(population.enterprises["uscc"])


def _source_values(population) -> pd.DataFrame:
    """(dataset, source_key, role) -> identifier as written in the source."""
    frames = [
        population.person_registry.assign(
            dataset="person_registry",
            source_key=lambda d: d["person_no"].astype(str),
            role="subject",
            value=lambda d: d["resident_id"],
        ),
        population.enterprise_registry.assign(
            dataset="enterprise_registry",
            source_key=lambda d: d["ent_id"].astype(str),
            role="legal_rep",
            value=lambda d: d["legal_rep_id"],
        ),
        population.enterprise_registry.assign(
            dataset="enterprise_registry",
            source_key=lambda d: d["ent_id"].astype(str),
            role="subject",
            value=lambda d: d["uscc"],
        ),
        population.taxpayers.assign(
            dataset="taxpayers",
            source_key=lambda d: d["taxpayer_code"],
            role="legal_rep",
            value=lambda d: d["legal_rep_id"],
        ),
        population.property_rights.assign(
            dataset="property_rights",
            source_key=lambda d: d["unit_no"],
            role="owner",
            value=lambda d: d["owner_id_code"],
        ),
        population.approval_results.assign(
            dataset="approval_results",
            source_key=lambda d: d["approval_no"],
            role="applicant",
            value=lambda d: d["applicant_id_code"],
        ),
    ]
    return pd.concat([f[["dataset", "source_key", "role", "value"]] for f in frames], ignore_index=True)


def test_source_records_agree_with_ground_truth(population) -> None:
    gt = population.ground_truth
    persons = population.persons.set_index("person_key")
    ents = population.enterprises.set_index("ent_key")
    # every ground-truth entity exists and carries the canonical id the truth names
    p = gt[gt["entity_kind"] == "person"]
    assert (persons.loc[p["entity_key"], "resident_id"].to_numpy() == p["canonical_id"].to_numpy()).all()
    e = gt[gt["entity_kind"] == "enterprise"]
    assert (ents.loc[e["entity_key"], "uscc"].to_numpy() == e["canonical_id"].to_numpy()).all()
    # every source record has a ground-truth row
    src = _source_values(population)
    merged = src.merge(gt, on=["dataset", "source_key", "role"], how="left", validate="many_to_one")
    assert merged["canonical_id"].notna().all()
    # clean identifiers (after undoing format dirt) agree with the truth
    checked = 0
    ent_by_org = population.enterprises.set_index("org_code")["uscc"]
    for row in merged.itertuples():
        if (
            row.value is None
            or pd.isna(row.value)
            or "wrong_check_digit" in row.dirt
            or "old_enterprise_code" in row.dirt
        ):
            continue
        code = normalise_code(row.value)
        if "legacy_resident_id" in row.dirt:
            assert len(code) == 15
            code = resident_15_to_18(code)
        assert code == row.canonical_id, row
        checked += 1
    assert checked > 0.8 * len(merged)
    # old enterprise codes point at the right enterprise too
    old = merged[merged["dirt"].str.contains("old_enterprise_code") & (merged["dataset"] == "property_rights")]
    for row in old.itertuples():
        assert ent_by_org[row.value] == row.canonical_id


def test_wrong_check_digits_are_really_wrong(population) -> None:
    reg = population.person_registry
    gt = population.ground_truth[population.ground_truth["dataset"] == "person_registry"]
    wrong = reg[gt["dirt"].str.contains("wrong_check_digit").to_numpy()]
    assert len(wrong) > 0
    assert not wrong["resident_id"].map(ric.is_valid).any()


def test_realised_dirt_rates_are_near_the_profile(population) -> None:
    report = population.dirt_report
    profile = DirtProfile().as_dict()
    assert set(report["realised"]) == set(profile)
    for kind, rate in report["realised"].items():
        target = profile[kind]
        assert abs(rate - target) <= max(0.35 * target, 0.006), (kind, rate, target)
        assert report["counts"][kind]["applied"] > 0, kind


def test_generator_is_deterministic() -> None:
    a = generate(5, Sizes(300, 80, 90))
    b = generate(5, Sizes(300, 80, 90))
    c = generate(6, Sizes(300, 80, 90))
    for name in ("persons", "person_registry", "enterprise_registry", "taxpayers", "property_rights", "ground_truth"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert a.dirt_report == b.dirt_report
    assert not a.persons["resident_id"].equals(c.persons["resident_id"])


def test_write_produces_ground_truth_and_report(tmp_path: Path) -> None:
    pop = generate(3, Sizes(200, 50, 60))
    write(pop, tmp_path)
    gt = pd.read_parquet(tmp_path / "ground_truth.parquet")
    assert {"department", "dataset", "source_key", "entity_kind", "canonical_id"} <= set(gt.columns)
    assert set(gt["department"]) == {"public_security", "commerce", "tax", "land"}
    report = json.loads((tmp_path / "dirt_report.json").read_text())
    assert report["realised"] == pop.dirt_report["realised"]
    assert (tmp_path / "data" / "taxpayers.parquet").exists()
