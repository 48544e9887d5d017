"""Each custom GX expectation passes and fails exactly the right rows, run by GX itself."""

from __future__ import annotations

from typing import Any

import great_expectations as gx
import pandas as pd
import pytest

from tests.validation.conftest import VALID_RID, VALID_RID_2, VALID_USCC
from validation.expectations import (
    ExpectColumnValuesToBeKnownPropertyOwner,
    ExpectColumnValuesToBeValidResidentId,
    ExpectColumnValuesToBeValidUscc,
    ExpectColumnValuesToResolveToIdentity,
)


def _unexpected(expectation: Any, values: list[Any]) -> tuple[bool, list[int]]:
    context = gx.get_context(mode="ephemeral")
    frame = pd.DataFrame({"v": values, "row": range(len(values))})
    batch = (
        context.data_sources.add_pandas("t")
        .add_dataframe_asset("a")
        .add_batch_definition_whole_dataframe("b")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    result = batch.validate(
        expectation, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["row"]}
    )
    assert not result.exception_info.get("raised_exception"), result.exception_info
    return bool(result.success), [int(i["row"]) for i in result.result.get("unexpected_index_list", [])]


def test_valid_resident_id() -> None:
    values = [VALID_RID, VALID_RID_2, "11010519491231002x", "110105491231002", "11010519491331002X", None, "abc"]
    success, rows = _unexpected(ExpectColumnValuesToBeValidResidentId(column="v"), values)
    assert not success
    # bad check digit, lower-case x (not canonical), 15-digit legacy, impossible month; None is skipped
    assert rows == [1, 2, 3, 4, 6]


def test_valid_resident_id_passes_clean_column() -> None:
    success, rows = _unexpected(ExpectColumnValuesToBeValidResidentId(column="v"), [VALID_RID, None])
    assert success and rows == []


def test_valid_uscc() -> None:
    values = [VALID_USCC, "91110000600037342L", "91110000600037341I", "9111000060003734", None]
    success, rows = _unexpected(ExpectColumnValuesToBeValidUscc(column="v"), values)
    assert not success
    assert rows == [1, 2, 3]


def test_resolve_to_identity_fails_nulls_and_blanks() -> None:
    success, rows = _unexpected(ExpectColumnValuesToResolveToIdentity(column="v"), ["E-1", None, "", "  ", "P-9"])
    assert not success
    assert rows == [1, 2, 3]


def test_resolve_to_identity_mostly() -> None:
    success, _ = _unexpected(ExpectColumnValuesToResolveToIdentity(column="v", mostly=0.5), ["E-1", None, "P-2", "P-3"])
    assert success


def test_known_property_owner() -> None:
    person = {"name": "张三", "holder_code": VALID_RID, "holder_kind": "person"}
    enterprise = {"name": "某公司", "holder_code": VALID_USCC, "holder_kind": "enterprise"}
    by_org_code = {"name": "某公司", "holder_code": "600037341", "holder_kind": "enterprise"}
    bad_code = {"name": None, "holder_code": VALID_RID_2, "holder_kind": "person"}
    # a damaged code the resolver can match: a named person whose id still carries a birth date,
    # a named enterprise without a code; not one of no declared kind, nor one born on no day
    matchable = {"name": "李四", "holder_code": VALID_RID_2, "holder_kind": "person"}
    named_enterprise = {"name": "某公司", "holder_code": None, "holder_kind": "enterprise"}
    no_kind = {"name": "李四", "holder_code": VALID_RID_2}
    no_birth = {"name": "李四", "holder_code": "110105194913310021", "holder_kind": "person"}
    wrong_kind = {"name": "张三", "holder_code": VALID_RID, "holder_kind": "enterprise"}
    unresolved = {**person, "resolved_id": None}
    resolved = {**person, "resolved_id": "P-1"}
    values = [
        [person],
        [person, enterprise],
        [by_org_code],
        [person, bad_code],
        [wrong_kind],
        [],
        None,
        [unresolved],
        [resolved],
        VALID_USCC,
        [matchable, named_enterprise],
        [no_kind],
        [no_birth],
        [{**matchable, "resolved_id": None}],  # matched, but left in review
    ]
    success, rows = _unexpected(ExpectColumnValuesToBeKnownPropertyOwner(column="v"), values)
    assert not success
    assert rows == [3, 4, 5, 6, 7, 11, 12, 13]


@pytest.mark.parametrize(
    "type_name",
    [
        "expect_column_values_to_be_valid_resident_id",
        "expect_column_values_to_be_valid_uscc",
        "expect_column_values_to_resolve_to_identity",
        "expect_column_values_to_be_known_property_owner",
    ],
)
def test_registered_by_type_name(type_name: str) -> None:
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    expectation = ExpectationConfiguration(type=type_name, kwargs={"column": "v"}).to_domain_obj()
    assert expectation.expectation_type == type_name
