"""The licence-type catalogue (电子证照目录) and the licence identifier."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from e_license_store.catalogue import CATALOGUE_PATH, CatalogueError, load_catalogue, parse_catalogue
from e_license_store.identifier import (
    ALPHABET,
    InvalidLicenseId,
    calc_check_char,
    is_issuing_authority,
    is_valid,
    make_license_id,
    parse,
    validate,
)


def test_catalogue_has_its_types_with_issuers_and_retention() -> None:
    cat = load_catalogue()
    assert {t.name for t in cat.values()} == {
        "营业执照", "税务登记证", "印章备案证明", "居民身份证", "不动产权证书", "建设项目用地预审意见",
        "企业投资项目核准批复",
    }  # fmt: skip
    assert cat["1201"].issuer_department == "public_security" and cat["1201"].holder_kind == "person"
    assert cat["1101"].issuer_department == "commerce"
    assert cat["1103"].issuer_department == "public_security"  # the seal filing of 多证联办
    assert cat["3201"].issuer_department == "development_reform" and cat["3201"].is_approval_result
    assert cat["3101"].is_approval_result and cat["3101"].validity_years == 3
    assert all(t.retention_years >= 1 and t.surface_fields for t in cat.values())


def test_catalogue_schema_rejects_a_type_without_retention(tmp_path: Path) -> None:
    data = yaml.safe_load(CATALOGUE_PATH.read_text(encoding="utf-8"))
    broken = copy.deepcopy(data)
    del broken["types"][0]["retention_years"]
    with pytest.raises(CatalogueError, match="retention_years"):
        parse_catalogue(broken)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert set(load_catalogue(path)) == set(load_catalogue())


def test_catalogue_rejects_duplicate_type_codes() -> None:
    data = yaml.safe_load(CATALOGUE_PATH.read_text(encoding="utf-8"))
    data["types"][1]["type_code"] = data["types"][0]["type_code"]
    with pytest.raises(CatalogueError, match="duplicate type codes"):
        parse_catalogue(data)


def test_catalogue_rejects_an_issuer_that_is_no_authoritys_uscc() -> None:
    data = yaml.safe_load(CATALOGUE_PATH.read_text(encoding="utf-8"))
    for bad in ("113303220025679672", "91110000600037341L"):  # check character wrong; an enterprise's code
        broken = copy.deepcopy(data)
        broken["types"][0]["issuer_code"] = bad
        with pytest.raises(CatalogueError, match="no issuing authority"):
            parse_catalogue(broken)
    broken = copy.deepcopy(data)
    broken["types"][0]["issuer_code"] = "330322"  # a region code: not even the shape
    with pytest.raises(CatalogueError, match="issuer_code"):
        parse_catalogue(broken)


def test_iso7064_mod37_36_matches_isan_example() -> None:
    # ISAN 0000-0000-D07A-0090-Q-...: check character Q under ISO 7064 MOD 37,36
    assert calc_check_char("00000000D07A0090") == "Q"


def test_license_id_is_deterministic_from_its_source() -> None:
    a = make_license_id("1101", "1133-0322-0025678958", "commerce", "enterprise_registry", "ent-1")
    b = make_license_id("1101", "113303220025678958", "commerce", "enterprise_registry", "ent-1")
    c = make_license_id("1101", "113303220025678958", "commerce", "enterprise_registry", "ent-2")
    assert a == b != c
    assert parse(a)[:2] == ("1101", "113303220025678958")
    assert len(a) == 4 + 1 + 18 + 1 + 12 + 1  # type, the issuer's USCC, serial and check


def test_is_issuing_authority_follows_gb_32100() -> None:
    assert is_issuing_authority("113303220025679671")  # an organ (机关): 1, 1
    assert is_issuing_authority("11330300002567983T") and is_issuing_authority("1133 0300-0025 6798 3t")
    assert not is_issuing_authority("113303220025679672")  # MOD 31 check character wrong
    assert not is_issuing_authority("91110000600037341L")  # valid, an enterprise's
    assert not is_issuing_authority("51110000600037341X")  # civil affairs' social organisation, not an authority
    for short in ("330322", "13303220000", "000000", "", None):
        assert not is_issuing_authority(short)


def test_every_single_character_substitution_is_detected() -> None:
    lid = make_license_id("2101", "113303220025679671", "land", "packages", "unit-42")
    assert is_valid(lid)
    flat = [i for i, ch in enumerate(lid) if ch != "-"]
    for i in flat:
        for ch in ALPHABET:
            if ch != lid[i]:
                assert not is_valid(lid[:i] + ch + lid[i + 1 :]), (i, ch)


def test_malformed_ids_are_refused() -> None:
    for bad in ["", "1101-330322", "1101-33-ABCDEFGHIJKL0", "1101-330322-abcdefghijklm"]:
        with pytest.raises(InvalidLicenseId):
            validate(bad)
