"""Identifier rules against the standards' vectors, and where python-stdnum disagrees."""

from __future__ import annotations

from types import ModuleType

import pytest
from stdnum.cn import ric
from stdnum.cn import uscc as stdnum_uscc
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength, ValidationError

from identifiers import org_code, reg_no, resident_id, taxpayer_id, uscc
from identifiers._common import reason_of
from tests.identifiers import vectors


def _ours(module: ModuleType, code: str) -> str:
    try:
        module.validate(code)
    except ValidationError as exc:
        return reason_of(exc)
    return "valid"


def _stdnum(module: ModuleType | None, code: str) -> str:
    if module is None:
        return "n/a (no module)"
    try:
        module.validate(code)
    except ValidationError as exc:
        return type(exc).__name__
    return "valid"


TABLES = [
    (resident_id, ric, vectors.RESIDENT_ID),
    (uscc, stdnum_uscc, vectors.USCC),
    (org_code, None, vectors.ORG_CODE),
    (reg_no, None, vectors.REG_NO),
    (taxpayer_id, None, vectors.TAXPAYER_ID),
]
CASES = [
    pytest.param(ours, theirs, row, id=f"{ours.__name__.split('.')[-1]}:{row[2]}")
    for ours, theirs, rows in TABLES
    for row in rows
]


@pytest.mark.parametrize(("ours", "theirs", "row"), CASES)
def test_vector(ours: ModuleType, theirs: ModuleType | None, row: tuple[str, str, str, str, str]) -> None:
    _rule, _clause, code, expected, stdnum_expected = row
    assert _ours(ours, code) == expected
    assert _stdnum(theirs, code) == stdnum_expected


def test_at_least_one_documented_disagreement_per_stdnum_module() -> None:
    for rows in (vectors.RESIDENT_ID, vectors.USCC):
        disagree = [r for r in rows if (r[3] == "valid") != (r[4] == "valid")]
        assert len(disagree) >= 3


def test_typed_exceptions_are_stdnums() -> None:
    with pytest.raises(InvalidLength):
        resident_id.validate("1234")
    with pytest.raises(InvalidFormat):
        uscc.validate("9111000060003734IL")
    with pytest.raises(InvalidChecksum):
        org_code.validate("600037342")
    with pytest.raises(InvalidComponent):
        resident_id.validate("110105199902300023")


def test_fifteen_to_eighteen() -> None:
    assert resident_id.to_18("110105491231002") == "11010519491231002X"
    assert resident_id.format("110105491231002") == "11010519491231002X"
    # the converted number validates on its own and by python-stdnum too
    assert ric.is_valid(resident_id.to_18("110105491231002"))


def test_every_authority_and_type_accepted() -> None:
    for authority, types in uscc.ENTITY_TYPES.items():
        for entity_type in types:
            body = f"{authority}{entity_type}330322MA2C00001"
            assert uscc.is_valid(body + uscc.calc_check_digit(body)), body
    assert set(uscc.AUTHORITIES) == set(uscc.ENTITY_TYPES)


def test_org_code_embedded_in_uscc_and_taxpayer_id_agree() -> None:
    assert uscc.get_org_code("91110000600037341L") == taxpayer_id.get_org_code("330322600037341") == "600037341"
    assert org_code.is_valid(uscc.get_org_code("91110000600037341L"))


def test_normalisation_of_dirty_input() -> None:
    assert resident_id.compact("１１０１０５　１９４９１２３１００２ｘ") == "11010519491231002X"
    assert org_code.compact("D2143569－X") == "D2143569X"
